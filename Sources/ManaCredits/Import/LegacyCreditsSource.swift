import HTTPKit
import Logging
import PostgresNIO

/// The original Bun mana-credits database, read in one read-only REPEATABLE READ transaction:
/// every figure of a run comes from one snapshot, and nothing is ever written there.
struct LegacyCreditsSource: Sendable {
    let connection: PostgresConnection
    let logger: Logger

    /// Why the original (or the target) cannot be imported as it is.
    /// Checks every original table exists, then opens the read-only snapshot.
    func begin() async throws {
        try await connection.query("SET TIME ZONE 'UTC'", logger: logger)
        try await connection.query("SET DateStyle = 'ISO'", logger: logger)
        try await connection.query("SET default_transaction_read_only = on", logger: logger)
        for table in CreditsImportMapping.tables {
            let exists = try await connection.query(PostgresQuery(unsafeSQL: "SELECT to_regclass('\(table.original)') IS NOT NULL"), logger: logger)
                .decode(Bool.self).reduce(false) { $1 }
            guard exists else {
                throw ImportRefusal(description: "the original database has no table \(table.original) (is --from the mana-credits database?)")
            }
        }
        try await connection.query("START TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY", logger: logger)
    }

    func end() async throws {
        try await connection.query("COMMIT", logger: logger)
    }

    /// Per user: the count and hash sum of every row of theirs (their digest), and the count.
    /// (Arrays, not rows: one value per column keeps a debug build's row iteration out of it.)
    func digests() async throws -> [String: (digest: String, rows: Int)] {
        let parts = CreditsImportMapping.userTables.map {
            "SELECT \($0.owner!) AS user_id, hashtextextended(t::text, 0)::numeric AS h FROM \($0.original) t"
        }
        let rows = try await connection.query(
            PostgresQuery(
                unsafeSQL: """
                    SELECT coalesce(array_agg(user_id), '{}'), coalesce(array_agg(n), '{}'), coalesce(array_agg(digest), '{}') FROM (
                        SELECT user_id, count(*)::bigint AS n, count(*) || ':' || sum(h) AS digest
                        FROM (\(parts.joined(separator: " UNION ALL "))) r GROUP BY user_id) d
                    """),
            logger: logger)
        var result: [String: (digest: String, rows: Int)] = [:]
        for try await (users, counts, digests) in rows.decode(([String], [Int64], [String]).self) {
            result.reserveCapacity(users.count)
            for index in users.indices { result[users[index]] = (digests[index], Int(counts[index])) }
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

    /// The rows of `table` belonging to `users` (every row for a global table) as COPY text
    /// in the table's order, and their count.
    func rows(of table: CreditsImportMapping.Table, users: [String]) async throws -> (text: String, count: Int) {
        let aggregate = "count(*)::bigint, coalesce(string_agg(\(table.copyLine), chr(10) ORDER BY \(table.order)) || chr(10), '')"
        let query: PostgresQuery
        if let owner = table.owner {
            query = "SELECT \(unescaped: aggregate) FROM \(unescaped: table.original) t WHERE t.\(unescaped: owner) = ANY(\(users))"
        } else {
            query = PostgresQuery(unsafeSQL: "SELECT \(aggregate) FROM \(table.original) t")
        }
        var result = ("", 0)
        for try await (count, text) in try await connection.query(query, logger: logger).decode((Int64, String).self) {
            result = (text, Int(count))
        }
        return result
    }

    /// What the ledger plan needs of the users' transactions and balance rows.
    func ledger(users: [String]) async throws -> (transactions: [String: [CreditsLedgerPlan.Original]], balances: [String: CreditsLedgerPlan.BalanceRow]) {
        var transactions: [String: [CreditsLedgerPlan.Original]] = [:]
        let rows = try await connection.query(
            """
            SELECT coalesce(array_agg(id::text ORDER BY o), '{}'), coalesce(array_agg(user_id ORDER BY o), '{}'),
                coalesce(array_agg(status::text ORDER BY o), '{}'), coalesce(array_agg(amount::bigint ORDER BY o), '{}'),
                coalesce(array_agg(balance_before::bigint ORDER BY o), '{}'), coalesce(array_agg(balance_after::bigint ORDER BY o), '{}'),
                coalesce(array_agg(created_at::text ORDER BY o), '{}'), coalesce(array_agg(h ORDER BY o), '{}')
            FROM (SELECT t.*, hashtextextended(t::text, 0)::text AS h, row_number() OVER (ORDER BY t.user_id, t.created_at, t.id) AS o
                  FROM credits.transactions t WHERE t.user_id = ANY(\(users))) x
            """, logger: logger)
        for try await (ids, owners, statuses, amounts, befores, afters, created, hashes) in rows.decode(
            ([String], [String], [String], [Int64], [Int64], [Int64], [String], [String]).self)
        {
            for index in ids.indices {
                transactions[owners[index], default: []].append(
                    .init(
                        id: ids[index], status: statuses[index], amount: amounts[index], before: befores[index], after: afters[index],
                        createdAt: created[index], hash: hashes[index]))
            }
        }
        var balances: [String: CreditsLedgerPlan.BalanceRow] = [:]
        let balanceRows = try await connection.query(
            """
            SELECT coalesce(array_agg(user_id), '{}'), coalesce(array_agg(balance::bigint), '{}'), coalesce(array_agg(total_earned::bigint), '{}'),
                coalesce(array_agg(total_spent::bigint), '{}')
            FROM credits.balances WHERE user_id = ANY(\(users))
            """, logger: logger)
        for try await (owners, balance, earned, spent) in balanceRows.decode(([String], [Int64], [Int64], [Int64]).self) {
            for index in owners.indices {
                balances[owners[index]] = .init(balance: balance[index], earned: earned[index], spent: spent[index])
            }
        }
        return (transactions, balances)
    }
}
