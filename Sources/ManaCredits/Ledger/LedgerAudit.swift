import Logging
import PostgresNIO

/// Checks every ledger invariant of the spec (and of debts) over the whole database and reports each
/// violation as a line of text (user and numbers; never anything secret).
struct LedgerAudit: Sendable {
    let client: PostgresClient
    let logger: Logger

    /// Each check: a name and a query returning (user_id, detail) for every violation.
    static let checks: [(name: String, sql: String)] = [
        ("balance below zero", "SELECT user_id, balance::text FROM credits.balances WHERE balance < 0"),
        (
            "total_earned - total_spent - reserved differs from balance",
            """
            SELECT user_id, format('%s - %s - %s <> %s', total_earned, total_spent, reserved, balance) FROM credits.balances
            WHERE total_earned - total_spent - reserved <> balance
            """
        ),
        // A reservation's hold counts whatever became of it: pending or completed it is the
        // debit, cancelled it is balanced by its refund row (reservations.md §7).
        (
            "balance differs from the sum of completed transactions and holds",
            """
            SELECT coalesce(b.user_id, t.user_id), format('balance %s, transactions sum to %s', coalesce(b.balance, 0), coalesce(t.total, 0))
            FROM credits.balances b
            FULL JOIN (SELECT user_id, sum(amount) AS total FROM credits.transactions x
                       WHERE status = 'completed' OR EXISTS (SELECT 1 FROM credits.reservations r WHERE r.transaction_id = x.id)
                       GROUP BY user_id) t
                ON t.user_id = b.user_id
            WHERE coalesce(b.balance, 0) <> coalesce(t.total, 0)
            """
        ),
        // Earned: completed credits but the refunds of holds (the credits were the user's all
        // along); spent: completed debits (a hold counts once committed).
        (
            "total_earned/total_spent differ from the transactions",
            """
            SELECT b.user_id, format('earned %s vs %s, spent %s vs %s', b.total_earned, coalesce(t.earned, 0), b.total_spent, coalesce(t.spent, 0))
            FROM credits.balances b
            LEFT JOIN (SELECT user_id, sum(amount) FILTER (WHERE amount > 0) AS earned, -sum(amount) FILTER (WHERE amount < 0) AS spent
                       FROM credits.transactions x WHERE status = 'completed'
                           AND NOT EXISTS (SELECT 1 FROM credits.reservations r WHERE r.refund_transaction_id = x.id)
                       GROUP BY user_id) t ON t.user_id = b.user_id
            WHERE b.total_earned <> coalesce(t.earned, 0) OR b.total_spent <> coalesce(t.spent, 0)
            """
        ),
        (
            "reserved differs from the open reservations",
            """
            SELECT coalesce(b.user_id, r.user_id), format('reserved %s, open reservations hold %s', coalesce(b.reserved, 0), coalesce(r.total, 0))
            FROM credits.balances b
            FULL JOIN (SELECT user_id, sum(amount) AS total FROM credits.reservations WHERE status = 'reserved' GROUP BY user_id) r
                ON r.user_id = b.user_id
            WHERE coalesce(b.reserved, 0) <> coalesce(r.total, 0)
            """
        ),
        (
            "a reservation whose hold or refund does not match it (reserved = pending hold, committed = completed, refunded/expired = cancelled with a refund row)",
            """
            SELECT r.user_id, r.id::text FROM credits.reservations r
            LEFT JOIN credits.transactions h ON h.id = r.transaction_id
            LEFT JOIN credits.transactions f ON f.id = r.refund_transaction_id
            WHERE h.id IS NULL OR h.user_id <> r.user_id OR h.amount <> -r.amount OR h.type <> 'usage'
                OR h.status <> CASE r.status WHEN 'reserved' THEN 'pending' WHEN 'committed' THEN 'completed' ELSE 'cancelled' END
                OR (r.status IN ('refunded', 'expired') AND (f.id IS NULL OR f.user_id <> r.user_id OR f.amount <> r.amount
                    OR f.type <> 'refund' OR f.status <> 'completed'))
            """
        ),
        (
            "a pending ledger row that is no open reservation's hold",
            """
            SELECT x.user_id, x.id::text FROM credits.transactions x
            WHERE x.status = 'pending' AND NOT EXISTS (SELECT 1 FROM credits.reservations r WHERE r.transaction_id = x.id AND r.status = 'reserved')
            """
        ),
        (
            "balance_after - balance_before differs from amount",
            "SELECT user_id, id::text FROM credits.transactions WHERE balance_after - balance_before <> amount"
        ),
        (
            "transaction chain broken (balance_before differs from the previous balance_after)",
            """
            SELECT user_id, id::text FROM (
                SELECT user_id, id, balance_before,
                    lag(balance_after, 1, 0::bigint) OVER (PARTITION BY user_id ORDER BY seq) AS previous
                FROM credits.transactions x
                WHERE status = 'completed' OR EXISTS (SELECT 1 FROM credits.reservations r WHERE r.transaction_id = x.id)) chain
            WHERE balance_before <> previous
            """
        ),
        ("debt below zero", "SELECT user_id, debt::text FROM credits.balances WHERE debt < 0"),
        ("a debtor holds credits (later credits pay the debt first)", "SELECT user_id, format('debt %s, balance %s', debt, balance) FROM credits.balances WHERE debt > 0 AND balance > 0"),
        (
            "debt differs from the sum of its history (credits.debts)",
            """
            SELECT coalesce(b.user_id, d.user_id), format('debt %s, history sums to %s', coalesce(b.debt, 0), coalesce(d.total, 0))
            FROM credits.balances b
            FULL JOIN (SELECT user_id, sum(amount) AS total FROM credits.debts GROUP BY user_id) d ON d.user_id = b.user_id
            WHERE coalesce(b.debt, 0) <> coalesce(d.total, 0)
            """
        ),
        (
            "a debt settlement without its reversal row of the same amount",
            """
            SELECT d.user_id, d.id::text FROM credits.debts d LEFT JOIN credits.transactions t ON t.id = d.transaction_id
            WHERE d.amount < 0 AND (t.id IS NULL OR t.type <> 'reversal' OR t.amount <> d.amount OR t.user_id <> d.user_id)
            """
        ),
    ]

    /// Every violation found, as "check: user: detail".
    func run() async throws -> [String] {
        try await client.withGuardedConnection { [logger] connection in
            var violations: [String] = []
            for check in Self.checks {
                let rows = try await connection.query(PostgresQuery(unsafeSQL: check.sql), logger: logger)
                for try await (user, detail) in rows.decode((String, String).self) {
                    violations.append("\(check.name): user \(user): \(detail)")
                }
            }
            return violations
        }
    }
}
