import HTTPKit
import Logging
import PostgresNIO

/// The invariants of an imported ledger (spec §4, 1–7) over the whole import after a run:
/// violations are what the import could not place or what breaks our ledger's rules (exit
/// status 1); notices are data with no place (kept in `legacy_credits`), what the original
/// itself got wrong and we imported as it was recorded, and what to review before going live.
struct CreditsImportChecks: Sendable {
    let connection: PostgresConnection
    let logger: Logger

    /// Adds counts, violations, notices and facts to `report`.
    func run(sourceCounts: [String: Int], into report: inout ImportReport) async throws {
        // Fresh copies have no statistics yet: without them the checks' joins are planned as nested loops.
        for table in CreditsImportMapping.tables {
            try await connection.query(PostgresQuery(unsafeSQL: "ANALYZE \(table.legacy), \(table.original)"), logger: logger)
        }
        for table in CreditsImportMapping.tables {
            let read = sourceCounts[table.original] ?? 0
            let kept = try await count("SELECT count(*) FROM \(table.legacy)")
            let written = try await count(Self.written(table))
            report.tables.append(
                ImportReport.TableCount(
                    table: "\(table.original) -> \(Self.target(table))", read: read, written: written, reported: kept - written))
            if read != kept {
                report.violation("\(table.original): the original has \(read) rows, the legacy copy \(kept)", count: abs(read - kept))
            }
        }
        for check in Self.violations {
            let (count, examples) = try await finding(check.sql)
            report.violation(check.name, count: count, examples: examples)
        }
        for check in LedgerAudit.checks {
            let (count, examples) = try await finding("SELECT user_id || ': ' || detail FROM (\(check.sql)) AS audit(user_id, detail)")
            report.violation("ledger audit: \(check.name)", count: count, examples: examples)
        }
        for check in Self.notices {
            let (count, examples) = try await finding(check.sql)
            report.notice(check.name, count: count, examples: examples)
        }
        let users = try await connection.query(
            """
            SELECT count(*) FILTER (WHERE state = 'imported')::bigint, count(*) FILTER (WHERE state = 'held')::bigint,
                count(*) FILTER (WHERE adjusted)::bigint FROM legacy_credits.users
            """, logger: logger)
        for try await (imported, held, adjusted) in users.decode((Int64, Int64, Int64).self) {
            report.facts["users imported"] = String(imported)
            report.facts["users held back"] = String(held)
            report.facts["users imported with a reviewed adjustment"] = String(adjusted)
        }
        report.facts["kept only in legacy_credits"] =
            "balances.version, stripe_customers.email and updated_at, usage_stats rows (rebuilt per UTC day), the original's amount_charged"
    }

    /// Our table an original table maps to.
    static func target(_ table: CreditsImportMapping.Table) -> String {
        table.name == "usage_stats" ? "credits.usage_stats (rebuilt from usage transactions)" : table.original
    }

    /// Rows of the legacy copy that are in ours.
    static func written(_ table: CreditsImportMapping.Table) -> String {
        if table.name == "usage_stats" { return "SELECT 0::bigint" }
        return "SELECT count(*) FROM \(table.legacy) l WHERE EXISTS (SELECT 1 FROM \(table.original) x WHERE x.\(table.key) = l.\(table.key))"
    }

    private func count(_ sql: String) async throws -> Int {
        try await connection.query(PostgresQuery(unsafeSQL: sql), logger: logger).decode(Int64.self).reduce(0) { Int($1) }
    }

    /// Runs a query returning one text per occurrence: the count and the first ten.
    private func finding(_ sql: String) async throws -> (Int, [String]) {
        var count = 0
        var examples: [String] = []
        for try await text in try await connection.query(PostgresQuery(unsafeSQL: sql), logger: logger).decode(String.self) {
            count += 1
            if examples.count < 10 { examples.append(text) }
        }
        return (count, examples)
    }

    /// Completed purchase transactions per `metadata.purchaseId` of the original.
    static let credited = """
        (SELECT metadata ->> 'purchaseId' AS purchase_id, count(*) AS n FROM legacy_credits.transactions
         WHERE type = 'purchase' AND status = 'completed' AND metadata ? 'purchaseId' GROUP BY 1)
        """

    static let importedUser = "EXISTS (SELECT 1 FROM legacy_credits.users u WHERE u.user_id = %@ AND u.state = 'imported')"
    static func imported(_ column: String) -> String { importedUser.replacingOccurrences(of: "%@", with: column) }

    /// Rows that should have a place and did not get one, and users left out.
    static let violations: [(name: String, sql: String)] = [
        (
            "users left out: nothing of theirs imported (or nothing since their last import)",
            "SELECT user_id || ': ' || coalesce(reason, '') FROM legacy_credits.users WHERE state = 'held' ORDER BY user_id"
        ),
        (
            "transactions of imported users not placed",
            """
            SELECT l.user_id || ' / ' || l.id FROM legacy_credits.transactions l
            WHERE \(imported("l.user_id")) AND l.status <> 'cancelled' AND NOT (l.amount = 0 AND l.balance_before = l.balance_after)
                AND NOT EXISTS (SELECT 1 FROM credits.transactions t WHERE t.id = l.id)
            """
        ),
        (
            "purchases of imported users not placed",
            """
            SELECT p.user_id || ' / ' || p.id FROM legacy_credits.purchases p
            WHERE \(imported("p.user_id")) AND p.status <> 'cancelled' AND NOT EXISTS (SELECT 1 FROM credits.purchases x WHERE x.id = p.id)
            """
        ),
        (
            "balances, subscriptions or Stripe customers of imported users not placed",
            """
            SELECT 'balance ' || user_id FROM legacy_credits.balances l
            WHERE \(imported("l.user_id")) AND NOT EXISTS (SELECT 1 FROM credits.balances x WHERE x.user_id = l.user_id)
            UNION ALL
            SELECT 'subscription ' || user_id FROM legacy_credits.sync_subscriptions l
            WHERE \(imported("l.user_id")) AND NOT EXISTS (SELECT 1 FROM credits.sync_subscriptions x WHERE x.user_id = l.user_id)
            UNION ALL
            SELECT 'stripe customer ' || user_id FROM legacy_credits.stripe_customers l
            WHERE \(imported("l.user_id")) AND NOT EXISTS (SELECT 1 FROM credits.stripe_customers x WHERE x.user_id = l.user_id)
            """
        ),
        (
            "packages that could not be placed (credits and price must be positive); their purchases cannot be placed",
            "SELECT id || ' ' || name FROM legacy_credits.packages p WHERE NOT EXISTS (SELECT 1 FROM credits.packages x WHERE x.id = p.id)"
        ),
        (
            "gift codes that could not be placed (code upper-case, 1-10000 credits, message up to 500 characters, an expiry)",
            """
            SELECT g.code || ' by ' || g.creator_id || ': ' || g.total_credits || ' credits' FROM legacy_credits.gift_codes g
            WHERE \(imported("g.creator_id")) AND NOT (\(CreditsImportMapping.giftCodeHasNoTarget))
                AND NOT EXISTS (SELECT 1 FROM gifts.gift_codes x WHERE x.id = g.id)
            """
        ),
        (
            "redemptions that could not be placed (their transaction is missing, or a second success of one code)",
            """
            SELECT r.id || ' of code ' || r.gift_code_id FROM legacy_credits.gift_redemptions r
            WHERE \(imported("r.redeemer_user_id")) AND EXISTS (SELECT 1 FROM gifts.gift_codes c WHERE c.id = r.gift_code_id)
                AND NOT EXISTS (SELECT 1 FROM gifts.gift_redemptions x WHERE x.id = r.id)
            """
        ),
        (
            "imported balances differ from the original's",
            """
            SELECT b.user_id || ': ours ' || b.balance || ', original ' || o.balance FROM credits.balances b
            JOIN legacy_credits.balances o USING (user_id) JOIN legacy_credits.users u USING (user_id)
            WHERE u.state = 'imported' AND (b.balance <> o.balance
                OR (NOT u.adjusted AND (b.total_earned, b.total_spent) <> (o.total_earned, o.total_spent)))
            """
        ),
    ]

    /// Data with no place, what the original recorded wrongly (imported as recorded), and what to review.
    static let notices: [(name: String, sql: String)] = [
        (
            "adjustments imported (app_id legacy-import, reviewed in the --accept-adjustments file)",
            "SELECT user_id || ': ' || amount || ' (' || description || ')' FROM credits.transactions WHERE app_id = 'legacy-import' ORDER BY user_id, seq"
        ),
        (
            "active gift codes past their expiry: the expiry job refunds their creators at once",
            """
            SELECT code || ' by ' || creator_id || ': ' || total_credits || ' credits, expired ' || expires_at
            FROM gifts.gift_codes WHERE status = 'active' AND expires_at <= now() ORDER BY expires_at
            """
        ),
        (
            "personalized gift codes without target_email (no place; kept in legacy_credits.gift_codes, their credits stay reserved)",
            """
            SELECT g.code || ' by ' || g.creator_id || ': ' || g.total_credits || ' credits, ' || g.status FROM legacy_credits.gift_codes g
            WHERE \(CreditsImportMapping.giftCodeHasNoTarget) ORDER BY g.created_at
            """
        ),
        (
            "redemptions of gift codes with no place (kept in legacy_credits.gift_redemptions)",
            """
            SELECT r.id || ' of code ' || g.code FROM legacy_credits.gift_redemptions r JOIN legacy_credits.gift_codes g ON g.id = r.gift_code_id
            WHERE \(CreditsImportMapping.giftCodeHasNoTarget)
            """
        ),
        (
            "creator names that are e-mail addresses (the public lookup shows creator names): imported as the part before @",
            """
            SELECT g.code || ': ' || g.creator_name || ' -> ' || coalesce(x.creator_name, 'NULL') FROM legacy_credits.gift_codes g
            JOIN gifts.gift_codes x ON x.id = g.id WHERE \(CreditsImportMapping.creatorNameIsEmail) AND x.creator_name IS DISTINCT FROM g.creator_name
            """
        ),
        (
            "creator names that are e-mail addresses, kept (--keep-creator-emails): the public lookup shows them",
            """
            SELECT g.code || ': ' || g.creator_name FROM legacy_credits.gift_codes g
            JOIN gifts.gift_codes x ON x.id = g.id WHERE \(CreditsImportMapping.creatorNameIsEmail) AND x.creator_name = g.creator_name
            """
        ),
        (
            "cancelled transactions (no place: our ledger has no cancelled status)",
            "SELECT user_id || ' / ' || id || ': ' || amount FROM legacy_credits.transactions WHERE status = 'cancelled'"
        ),
        (
            "zero-amount transactions (no place: amounts are never 0)",
            "SELECT user_id || ' / ' || id FROM legacy_credits.transactions WHERE amount = 0 AND balance_before = balance_after"
        ),
        (
            "cancelled purchases (no place)",
            "SELECT user_id || ' / ' || id FROM legacy_credits.purchases WHERE status = 'cancelled'"
        ),
        (
            "packages renamed: their name was taken by an earlier package",
            "SELECT p.name || ' -> ' || x.name FROM legacy_credits.packages p JOIN credits.packages x ON x.id = p.id WHERE x.name <> p.name"
        ),
        (
            "Stripe customers' e-mail addresses (kept only in legacy_credits.stripe_customers)",
            "SELECT user_id FROM legacy_credits.stripe_customers WHERE email IS NOT NULL"
        ),
        (
            "sync subscriptions whose amount_charged (the original's next price) differs from their last charge (ours)",
            """
            SELECT s.user_id || ': ' || s.amount_charged || ' -> ' || x.amount_charged FROM legacy_credits.sync_subscriptions s
            JOIN credits.sync_subscriptions x USING (user_id) WHERE x.amount_charged <> s.amount_charged
            """
        ),
        (
            "invariant 5 (original): completed purchases credited more than once (imported as recorded; review)",
            """
            SELECT p.user_id || ' / ' || p.id || ': ' || c.n || ' purchase transactions' FROM legacy_credits.purchases p
            JOIN \(credited) c ON c.purchase_id = p.id::text WHERE c.n > 1
            """
        ),
        (
            "invariant 5 (original): completed purchases without a purchase transaction",
            """
            SELECT p.user_id || ' / ' || p.id FROM legacy_credits.purchases p LEFT JOIN \(credited) c ON c.purchase_id = p.id::text
            WHERE p.status = 'completed' AND c.n IS NULL
            """
        ),
        (
            "invariant 5 (original): purchases not completed that were credited (a payment_failed after success)",
            """
            SELECT p.user_id || ' / ' || p.id || ' ' || p.status FROM legacy_credits.purchases p JOIN \(credited) c ON c.purchase_id = p.id::text
            WHERE p.status <> 'completed'
            """
        ),
        (
            "invariant 4 (original): successful redemptions whose transaction is not the redeemer's gift of the code's credits",
            """
            SELECT r.id || ' of code ' || g.code FROM legacy_credits.gift_redemptions r JOIN legacy_credits.gift_codes g ON g.id = r.gift_code_id
            LEFT JOIN legacy_credits.transactions t ON t.id = r.credit_transaction_id
            WHERE r.status = 'success' AND (t.id IS NULL OR t.type <> 'gift' OR t.user_id <> r.redeemer_user_id
                OR t.amount <> r.credits_received OR r.credits_received <> g.total_credits)
            """
        ),
        (
            "invariant 4 (original): gift codes whose reservation is not the creator's gift of -total_credits",
            """
            SELECT g.code || ' by ' || g.creator_id FROM legacy_credits.gift_codes g LEFT JOIN legacy_credits.transactions t ON t.id = g.reservation_transaction_id
            WHERE t.id IS NULL OR t.type <> 'gift' OR t.user_id <> g.creator_id OR t.amount <> -g.total_credits
            """
        ),
        (
            "invariant 4 (original): depleted, redeemed and one successful redemption disagree",
            """
            SELECT g.code || ': ' || g.status || ', redeemed ' || g.redeemed || ', ' || coalesce(r.n, 0) || ' successful redemption(s)'
            FROM legacy_credits.gift_codes g
            LEFT JOIN (SELECT gift_code_id, count(*) AS n FROM legacy_credits.gift_redemptions WHERE status = 'success' GROUP BY 1) r ON r.gift_code_id = g.id
            WHERE (g.status = 'depleted') <> (g.redeemed <> 0) OR (g.redeemed <> 0) <> (coalesce(r.n, 0) = 1) OR coalesce(r.n, 0) > 1
            """
        ),
        (
            "invariant 4 (original): cancelled unredeemed gift codes without their refund",
            """
            SELECT g.code || ' by ' || g.creator_id || ': ' || g.total_credits || ' credits' FROM legacy_credits.gift_codes g
            WHERE g.status = 'cancelled' AND g.redeemed = 0 AND NOT EXISTS (
                SELECT 1 FROM legacy_credits.transactions t WHERE t.user_id = g.creator_id AND t.type = 'refund' AND t.app_id = 'gifts'
                    AND t.status = 'completed' AND t.amount = g.total_credits AND t.created_at >= g.created_at)
            """
        ),
        (
            "invariant 6 (original): usage_stats differ from the usage transactions (ours are rebuilt from the transactions)",
            """
            SELECT coalesce(s.user_id, t.user_id) || ' / ' || coalesce(s.app_id, t.app_id) || ': stats ' || coalesce(s.used, 0)
                || ', transactions ' || coalesce(t.used, 0)
            FROM (SELECT user_id, app_id, sum(credits_used) AS used FROM legacy_credits.usage_stats GROUP BY 1, 2) s
            FULL JOIN (SELECT user_id, app_id, -sum(amount) AS used FROM legacy_credits.transactions
                       WHERE type = 'usage' AND status = 'completed' GROUP BY 1, 2) t ON (t.user_id, t.app_id) = (s.user_id, s.app_id)
            WHERE coalesce(s.used, 0) <> coalesce(t.used, 0)
            """
        ),
    ]
}
