import HTTPKit
import Logging
import PostgresNIO

/// `mana-credits import --status`: where the import stands, from the target alone.
enum CreditsImportStatus {
    /// The status as lines of text.
    static func lines(target: DatabaseURL, logger: Logger) async throws -> [String] {
        try await ServiceRuntime.withDatabase(target, maximumConnections: 1, logger: logger) { client in
            try await client.withConnection { connection in
                try await connection.query("SET TIME ZONE 'UTC'", logger: logger)
                let exists = try await connection.query(
                    "SELECT to_regclass('legacy_credits.import_state') IS NOT NULL", logger: logger
                ).decode(Bool.self).reduce(false) { $1 }
                guard exists else { return ["no import has run against this database"] }
                var lines: [String] = []
                let state = try await connection.query(
                    """
                    SELECT source, runs, updated_at::text,
                        (SELECT count(*) FROM legacy_credits.users WHERE state = 'imported')::bigint,
                        (SELECT count(*) FROM legacy_credits.users WHERE state = 'held')::bigint,
                        (SELECT count(*) FROM legacy_credits.transactions)::bigint
                    FROM legacy_credits.import_state
                    """, logger: logger)
                for try await (source, runs, updated, imported, held, transactions) in state.decode(
                    (String, Int, String, Int64, Int64, Int64).self)
                {
                    lines.append("source: \(source)")
                    lines.append("runs completed: \(runs), last change \(updated)")
                    lines.append("users imported: \(imported), held back: \(held)")
                    lines.append("original transactions read: \(transactions)")
                }
                lines += try await ImportRuns.recentLines(schema: "legacy_credits", on: connection, logger: logger)
                if lines.isEmpty { lines.append("the import has started but no batch has committed yet") }
                return lines
            }
        }
    }
}
