import Foundation
import Logging
import PostgresNIO

/// What both `import` commands share around their own work: the `import_runs` table of their
/// bookkeeping schema (one row per run with its report), the connections, the
/// refusal, and how a run ends (report printed and written, exit status).
package enum ImportRuns {
    /// The DDL of `<schema>.import_runs`.
    package static func createSQL(schema: StaticString) -> String {
        """
        CREATE TABLE IF NOT EXISTS \(schema).import_runs (
            id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            finished_at timestamptz NOT NULL DEFAULT now(),
            rows_read bigint NOT NULL,
            rows_written bigint NOT NULL,
            violations integer NOT NULL,
            report jsonb NOT NULL
        )
        """
    }

    /// Records a run and its report.
    package static func record(_ report: ImportReport, schema: StaticString, on connection: PostgresConnection, logger: Logger) async throws {
        let json = String(decoding: try JSONEncoder().encode(report), as: UTF8.self)
        try await connection.query(
            """
            INSERT INTO \(unescaped: "\(schema)").import_runs (rows_read, rows_written, violations, report)
            VALUES (\(report.rowsRead), \(report.rowsWritten), \(report.violations.count), \(json)::jsonb)
            """, logger: logger)
    }

    /// The last five runs, a line each, for `import --status`.
    package static func recentLines(schema: StaticString, on connection: PostgresConnection, logger: Logger) async throws -> [String] {
        let runs = try await connection.query(
            "SELECT id, finished_at::text, rows_read, rows_written, violations FROM \(unescaped: "\(schema)").import_runs ORDER BY id DESC LIMIT 5",
            logger: logger)
        var lines: [String] = []
        for try await (id, finished, read, written, violations) in runs.decode((Int64, String, Int64, Int64, Int).self) {
            lines.append("run \(id) finished \(finished): \(read) read, \(written) written, \(violations) violation(s)")
        }
        return lines
    }

    /// Runs `body` with one connection to the original (`source`) and one to ours (`target`).
    package static func withConnections<T: Sendable>(
        source: DatabaseURL, target: DatabaseURL, logger: Logger,
        _ body: @escaping @Sendable (_ source: PostgresConnection, _ target: PostgresConnection) async throws -> T
    ) async throws -> T {
        try await withConnections(source: source, target: target, targets: 1, logger: logger) { source, targets in
            try await body(source, targets[0])
        }
    }

    /// Runs `body` with one connection to the original (`source`) and `targets` to ours.
    package static func withConnections<T: Sendable>(
        source: DatabaseURL, target: DatabaseURL, targets: Int, logger: Logger,
        _ body: @escaping @Sendable (_ source: PostgresConnection, _ targets: [PostgresConnection]) async throws -> T
    ) async throws -> T {
        try await ServiceRuntime.withDatabase(source, maximumConnections: 1, logger: logger) { (sourceClient: PostgresClient) -> T in
            try await ServiceRuntime.withDatabase(target, maximumConnections: targets, logger: logger) { (targetClient: PostgresClient) -> T in
                try await sourceClient.withConnection { sourceConnection in
                    try await withTargets(targets, of: targetClient, [], logger: logger) { try await body(sourceConnection, $0) }
                }
            }
        }
    }

    private static func withTargets<T: Sendable>(
        _ count: Int, of client: PostgresClient, _ held: [PostgresConnection], logger: Logger,
        _ body: @escaping @Sendable ([PostgresConnection]) async throws -> T
    ) async throws -> T {
        guard held.count < count else { return try await body(held) }
        return try await client.withConnection { connection in
            try await withTargets(count, of: client, held + [connection], logger: logger, body)
        }
    }

    /// How an `import` command ends: the report printed (and written as JSON to `reportPath`);
    /// 0 when clean, 1 when anything is violated or the import failed, 2 when it was refused.
    package static func exitStatus(reportPath: String?, _ run: () async throws -> ImportReport) async throws -> Int32 {
        let result: ImportReport
        do {
            result = try await run()
        } catch let refusal as ImportRefusal {
            FileHandle.standardError.write(Data("import refused: \(refusal.description)\n".utf8))
            return 2
        } catch let error as PSQLError {
            // PSQLError's description hides the server's message; an operator needs it.
            let message = error.serverInfo?[.message] ?? "\(error.code)"
            FileHandle.standardError.write(Data("import failed: \(message)\n".utf8))
            return 1
        }
        print(result.text)
        if let reportPath { try result.write(to: reportPath) }
        return result.isClean ? 0 : 1
    }
}

/// The original cannot be imported as it is (a missing table, a role that cannot read it): exit status 2.
package struct ImportRefusal: Error, CustomStringConvertible {
    package let description: String

    package init(description: String) {
        self.description = description
    }
}
