import HTTPKit
import Logging
import PostgresNIO

/// The original Bun mana-credits database, read in one read-only REPEATABLE READ transaction:
/// every figure of a run comes from one snapshot, and nothing is ever written there.
struct LegacyCreditsSource: Sendable {
    let connection: PostgresConnection
    let logger: Logger

    /// Why the original (or the target) cannot be imported as it is.
    struct Refusal: Error, CustomStringConvertible {
        let description: String
    }

    /// Checks every original table exists, then opens the read-only snapshot.
    func begin() async throws {
        try await connection.query("SET TIME ZONE 'UTC'", logger: logger)
        try await connection.query("SET DateStyle = 'ISO'", logger: logger)
        try await connection.query("SET default_transaction_read_only = on", logger: logger)
        for table in CreditsImportMapping.tables {
            let exists = try await connection.query(PostgresQuery(unsafeSQL: "SELECT to_regclass('\(table.original)') IS NOT NULL"), logger: logger)
                .decode(Bool.self).reduce(false) { $1 }
            guard exists else {
                throw Refusal(description: "the original database has no table \(table.original) (is --from the mana-credits database?)")
            }
        }
        try await connection.query("START TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY", logger: logger)
    }

    func end() async throws {
        try await connection.query("COMMIT", logger: logger)
    }

    /// Per user: the count and hash sum of every row of theirs (their digest), and the count.
    func digests() async throws -> [String: (digest: String, rows: Int)] {
        let parts = CreditsImportMapping.userTables.map {
            "SELECT \($0.owner!) AS user_id, hashtextextended(t::text, 0)::numeric AS h FROM \($0.original) t"
        }
        let rows = try await connection.query(
            PostgresQuery(
                unsafeSQL: "SELECT user_id, count(*)::bigint, sum(h)::text FROM (\(parts.joined(separator: " UNION ALL "))) r GROUP BY user_id"),
            logger: logger)
        var result: [String: (digest: String, rows: Int)] = [:]
        for try await (user, count, sum) in rows.decode((String, Int64, String).self) {
            result[user] = ("\(count):\(sum)", Int(count))
        }
        return result
    }

    /// Rows per original table in the snapshot.
    func counts() async throws -> [String: Int] {
        var counts: [String: Int] = [:]
        for table in CreditsImportMapping.tables {
            counts[table.original] = try await connection.query(
                PostgresQuery(unsafeSQL: "SELECT count(*)::bigint FROM \(table.original)"), logger: logger
            ).decode(Int64.self).reduce(0) { Int($1) }
        }
        return counts
    }

    /// The rows of `table` belonging to `users` (every row for a global table), each column
    /// as text and the row's hash last.
    func rows(of table: CreditsImportMapping.Table, users: [String]) async throws -> [[String?]] {
        let query: PostgresQuery
        if let owner = table.owner {
            query = "SELECT \(unescaped: table.selectList) FROM \(unescaped: table.original) t WHERE t.\(unescaped: owner) = ANY(\(users)) ORDER BY \(unescaped: table.order)"
        } else {
            query = PostgresQuery(unsafeSQL: "SELECT \(table.selectList) FROM \(table.original) t ORDER BY \(table.order)")
        }
        var result: [[String?]] = []
        for try await row in try await connection.query(query, logger: logger) {
            var cells: [String?] = []
            cells.reserveCapacity(table.columns.count + 1)
            for cell in row { cells.append(try cell.decode(String?.self)) }
            result.append(cells)
        }
        return result
    }
}
