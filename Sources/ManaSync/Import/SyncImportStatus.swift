import HTTPKit
import Logging
import PostgresNIO

/// `mana-sync import --status`: where the import stands, from the target alone.
enum SyncImportStatus {
    /// The status as lines of text.
    static func lines(target: DatabaseURL, logger: Logger) async throws -> [String] {
        try await ServiceRuntime.withDatabase(target, maximumConnections: 1, logger: logger) { client in
            try await client.withConnection { connection in
                try await connection.query("SET TIME ZONE 'UTC'", logger: logger)
                let exists = try await connection.query(
                    "SELECT to_regclass('legacy_sync.import_state') IS NOT NULL", logger: logger
                ).decode(Bool.self).reduce(false) { $1 }
                guard exists else { return ["no import has run against this database"] }
                var lines: [String] = []
                let state = try await connection.query(
                    """
                    SELECT source, coalesce(last_created_at::text, '-'), coalesce(last_id::text, '-'), cutover_cursor, runs, updated_at::text,
                        (SELECT count(*) FROM legacy_sync.sync_changes)::bigint
                    FROM legacy_sync.import_state
                    """, logger: logger)
                for try await (source, createdAt, id, cutover, runs, updated, rows) in state.decode(
                    (String, String, String, Int64, Int, String, Int64).self)
                {
                    lines.append("source: \(source)")
                    lines.append("runs completed: \(runs), last change \(updated)")
                    lines.append("rows imported: \(rows)")
                    lines.append("resume after: created_at \(createdAt), id \(id)")
                    lines.append("cut-over cursor: \(cutover) (\(Timestamp.format(microseconds: cutover)))")
                }
                let recordsDeferred = try await connection.query(
                    "SELECT to_regclass('legacy_sync.deferred_indexes') IS NOT NULL", logger: logger
                ).decode(Bool.self).reduce(false) { $1 }
                let deferred =
                    recordsDeferred
                    ? try await connection.query(
                        "SELECT table_name || '.' || index_name FROM legacy_sync.deferred_indexes ORDER BY 1", logger: logger
                    ).decode(String.self).reduce(into: [String]()) { $0.append($1) } : []
                if !deferred.isEmpty {
                    lines.append(
                        "indexes left out by an unfinished first load (the next run builds them; until then pulls are slow): "
                            + deferred.joined(separator: ", "))
                }
                lines += try await ImportRuns.recentLines(schema: "legacy_sync", on: connection, logger: logger)
                if lines.isEmpty { lines.append("the import has started but no batch has committed yet") }
                return lines
            }
        }
    }
}
