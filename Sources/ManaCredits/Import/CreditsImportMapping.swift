/// The original Bun mana-credits' tables and how each maps to ours (spec §3, "mana-credits →
/// credits, gifts"), in one place: the columns read (and kept verbatim in `legacy_credits`),
/// which rows have a place, and the statements that place a batch's rows.
///
/// | original | ours | how |
/// |---|---|---|
/// | `credits.transactions` | `credits.transactions` | per user in chain order (`seq`); `caller`, `system_key` NULL; `cancelled` and zero-amount rows: no place |
/// | `credits.balances` | `credits.balances` | balance and totals from the imported ledger (equal to the original's, or a reviewed adjustment); `version` dropped; `debt` 0 |
/// | `credits.packages` | `credits.packages` | `price_euro_cents`, `stripe_price_id`, `metadata`, `updated_at` verbatim; NULL description `''`; a duplicate name gets ` (legacy <id>)` |
/// | `credits.purchases` | `credits.purchases` | `currency` `eur`; `transaction_id` = the first `purchase` row with `metadata.purchaseId` = `id`; `cancelled`: no place |
/// | `credits.usage_stats` | `credits.usage_stats` | rebuilt from usage transactions per (user, app, UTC day) |
/// | `credits.stripe_customers` | `credits.stripe_customers` | `email`, `updated_at` dropped |
/// | `credits.sync_subscriptions` | `credits.sync_subscriptions` | `amount_charged` = last sync charge; `next_charge_at` NULL unless active and paid |
/// | `gifts.gift_codes` | `gifts.gift_codes` | `redeemed` ≠ 0; NULL `short_url` = `{BASE_URL}/g/{code}`; an e-mail as `creator_name` becomes its local part; personalized without `target_email`: no place |
/// | `gifts.gift_redemptions` | `gifts.gift_redemptions` | once its code and transaction are imported |
enum CreditsImportMapping {
    /// An original table: its columns (read as text, kept verbatim with `row_hash`), its key
    /// and the column naming the user its rows belong to (nil: the table is global).
    struct Table: Sendable {
        let original: String
        let columns: [(name: String, type: String)]
        let key: String
        let owner: String?
        let order: String

        var name: String { String(original.split(separator: ".").last!) }
        var legacy: String { "legacy_credits.\(name)" }
        var stage: String { "stage_\(name)" }
        var columnNames: [String] { columns.map(\.name) }
        /// The row as a line of COPY text, built by the original's server: every column escaped
        /// (`\N` for NULL), then the row's hash (its change detector).
        var copyLine: String {
            let cells = columns.map {
                #"coalesce(replace(replace(replace(replace(t.\#($0.name)::text, '\', '\\'), chr(9), '\t'), chr(10), '\n'), chr(13), '\r'), '\N')"#
            }
            let list = (cells + ["hashtextextended(t::text, 0)::text"]).joined(separator: ", ")
            return "concat_ws(chr(9), \(list))"
        }
    }

    static let transactions = Table(
        original: "credits.transactions",
        columns: [
            ("id", "uuid"), ("user_id", "text"), ("type", "text"), ("status", "text"), ("amount", "bigint"), ("balance_before", "bigint"),
            ("balance_after", "bigint"), ("app_id", "text"), ("description", "text"), ("metadata", "jsonb"), ("idempotency_key", "text"),
            ("created_at", "timestamptz"), ("completed_at", "timestamptz"),
        ], key: "id", owner: "user_id", order: "t.user_id, t.created_at, t.id")
    static let balances = Table(
        original: "credits.balances",
        columns: [
            ("user_id", "text"), ("balance", "bigint"), ("total_earned", "bigint"), ("total_spent", "bigint"), ("version", "bigint"),
            ("created_at", "timestamptz"), ("updated_at", "timestamptz"),
        ], key: "user_id", owner: "user_id", order: "t.user_id")
    static let packages = Table(
        original: "credits.packages",
        columns: [
            ("id", "uuid"), ("name", "text"), ("description", "text"), ("credits", "bigint"), ("price_euro_cents", "bigint"),
            ("stripe_price_id", "text"), ("active", "boolean"), ("sort_order", "integer"), ("metadata", "jsonb"),
            ("created_at", "timestamptz"), ("updated_at", "timestamptz"),
        ], key: "id", owner: nil, order: "t.created_at, t.id")
    static let purchases = Table(
        original: "credits.purchases",
        columns: [
            ("id", "uuid"), ("user_id", "text"), ("package_id", "uuid"), ("credits", "bigint"), ("price_euro_cents", "bigint"),
            ("stripe_payment_intent_id", "text"), ("stripe_customer_id", "text"), ("status", "text"), ("metadata", "jsonb"),
            ("created_at", "timestamptz"), ("completed_at", "timestamptz"),
        ], key: "id", owner: "user_id", order: "t.user_id, t.created_at, t.id")
    static let usageStats = Table(
        original: "credits.usage_stats",
        columns: [
            ("id", "uuid"), ("user_id", "text"), ("app_id", "text"), ("credits_used", "bigint"), ("date", "timestamptz"), ("metadata", "jsonb"),
        ], key: "id", owner: "user_id", order: "t.user_id, t.id")
    static let stripeCustomers = Table(
        original: "credits.stripe_customers",
        columns: [("user_id", "text"), ("stripe_customer_id", "text"), ("email", "text"), ("created_at", "timestamptz"), ("updated_at", "timestamptz")],
        key: "user_id", owner: "user_id", order: "t.user_id")
    static let subscriptions = Table(
        original: "credits.sync_subscriptions",
        columns: [
            ("user_id", "text"), ("active", "boolean"), ("billing_interval", "text"), ("amount_charged", "bigint"), ("activated_at", "timestamptz"),
            ("next_charge_at", "timestamptz"), ("paused_at", "timestamptz"), ("gifted_at", "timestamptz"), ("is_gifted", "boolean"),
            ("gifted_by", "text"), ("created_at", "timestamptz"), ("updated_at", "timestamptz"),
        ], key: "user_id", owner: "user_id", order: "t.user_id")
    static let giftCodes = Table(
        original: "gifts.gift_codes",
        columns: [
            ("id", "uuid"), ("code", "text"), ("short_url", "text"), ("creator_id", "text"), ("creator_name", "text"), ("total_credits", "bigint"),
            ("redeemed", "bigint"), ("type", "text"), ("status", "text"), ("target_email", "text"), ("message", "text"),
            ("expires_at", "timestamptz"), ("reservation_transaction_id", "uuid"), ("created_at", "timestamptz"), ("updated_at", "timestamptz"),
        ], key: "id", owner: "creator_id", order: "t.creator_id, t.created_at, t.id")
    static let giftRedemptions = Table(
        original: "gifts.gift_redemptions",
        columns: [
            ("id", "uuid"), ("gift_code_id", "uuid"), ("redeemer_user_id", "text"), ("status", "text"), ("credits_received", "bigint"),
            ("credit_transaction_id", "uuid"), ("source_app_id", "text"), ("created_at", "timestamptz"),
        ], key: "id", owner: "redeemer_user_id", order: "t.redeemer_user_id, t.created_at, t.id")

    /// Every table, in the order a batch writes them.
    static let tables = [packages, balances, transactions, purchases, usageStats, stripeCustomers, subscriptions, giftCodes, giftRedemptions]
    static var userTables: [Table] { tables.filter { $0.owner != nil } }

    // MARK: Which rows have a place

    /// Transactions our CHECKs refuse for no fault of the data: no place, kept in legacy_credits.
    static func transactionHasNoPlace(status: String, amount: Int64, before: Int64, after: Int64) -> String? {
        if status == "cancelled" { return "cancelled" }
        if amount == 0, before == after { return "zero amount" }
        return nil
    }

    /// A purchase that has a place (`p` a legacy or staged purchase).
    static let purchaseIsPlaceable = """
        p.status IN ('pending', 'completed', 'failed') AND p.credits > 0 AND p.price_euro_cents > 0
            AND EXISTS (SELECT 1 FROM credits.packages k WHERE k.id = p.package_id)
        """

    /// A subscription our CHECKs accept (invariant 7).
    static let subscriptionIsPlaceable = "NOT (s.is_gifted AND NOT s.active) AND NOT (s.active AND NOT s.is_gifted AND s.next_charge_at IS NULL)"

    /// A gift code our CHECKs accept (`personalized_codes_have_a_target` is a no-place case of its own).
    static let giftCodeIsPlaceable = """
        g.code = upper(g.code) AND g.total_credits BETWEEN 1 AND 10000 AND g.expires_at IS NOT NULL
            AND g.type IN ('simple', 'personalized') AND coalesce(char_length(g.message), 0) <= 500
            AND NOT (g.type = 'personalized' AND g.target_email IS NULL)
        """
    static let giftCodeHasNoTarget = "g.type = 'personalized' AND g.target_email IS NULL"

    /// An e-mail address standing as a creator's name (the public lookup shows it).
    static let creatorNameIsEmail = "g.creator_name ~ '^[^@[:space:]]+@[^@[:space:]]+$'"

    // MARK: Placing a batch

    /// Users of the batch whose rows cannot be placed (not adjustable): held back.
    static let holdBack = """
        UPDATE stage_users u SET decision = 'held', reason = concat_ws('; ', u.reason, b.reason)
        FROM (
            SELECT user_id, string_agg(reason, '; ' ORDER BY reason) AS reason FROM (
                SELECT p.user_id, 'purchase ' || p.id || ' cannot be placed (status ' || p.status || ', package ' || coalesce(p.package_id::text, 'NULL')
                    || ', ' || p.credits || ' credits, ' || p.price_euro_cents || ' cents)' AS reason
                FROM stage_purchases p WHERE p.status <> 'cancelled' AND NOT (\(purchaseIsPlaceable))
                UNION ALL
                SELECT s.user_id, 'sync subscription violates invariant 7 (active ' || s.active || ', gifted ' || s.is_gifted
                    || ', next_charge_at ' || coalesce(s.next_charge_at::text, 'NULL') || ')'
                FROM stage_sync_subscriptions s WHERE NOT (\(subscriptionIsPlaceable))
            ) r GROUP BY user_id
        ) b
        WHERE u.user_id = b.user_id AND u.decision = 'import'
        """

    /// The batch's ledger rows and reviewed adjustments, per user in chain order: the identity
    /// column assigns `seq` in this order.
    static let placeTransactions = """
        WITH placed AS (
            INSERT INTO credits.transactions (id, user_id, type, status, amount, balance_before, balance_after, app_id, description,
                metadata, idempotency_key, created_at, completed_at, system_key, caller)
            SELECT id, user_id, type, status, amount, balance_before, balance_after, app_id, description, metadata, idempotency_key,
                created_at, completed_at, system_key, NULL
            FROM (
                SELECT t.id, t.user_id, t.type, t.status, t.amount, t.balance_before, t.balance_after, t.app_id, t.description, t.metadata,
                    t.idempotency_key, t.created_at, t.completed_at, NULL::text AS system_key, c.pos
                FROM stage_chain c JOIN stage_transactions t USING (id)
                UNION ALL
                SELECT md5(a.user_id || a.system_key)::uuid, a.user_id, CASE WHEN a.amount > 0 THEN 'refund' ELSE 'reversal' END, 'completed',
                    a.amount, a.balance_before, a.balance_after, 'legacy-import', a.description, a.metadata, NULL,
                    coalesce(a.created_at, now()), coalesce(a.created_at, now()), a.system_key, a.pos
                FROM stage_adjustments a
            ) r
            WHERE EXISTS (SELECT 1 FROM stage_users u WHERE u.user_id = r.user_id AND u.decision = 'import')
            ORDER BY user_id, pos
            RETURNING 1
        )
        SELECT count(*)::bigint FROM placed
        """

    /// Balance rows from the imported ledger (Swift checked it against the original's row).
    static let placeBalances = """
        WITH placed AS (
            INSERT INTO credits.balances AS b (user_id, balance, total_earned, total_spent, created_at, updated_at)
            SELECT u.user_id, coalesce(l.total, 0), coalesce(l.earned, 0), coalesce(l.spent, 0), coalesce(o.created_at, now()),
                coalesce(o.updated_at, now())
            FROM stage_users u
            LEFT JOIN stage_balances o ON o.user_id = u.user_id
            LEFT JOIN LATERAL (
                SELECT sum(amount) AS total, coalesce(sum(amount) FILTER (WHERE amount > 0), 0) AS earned,
                    coalesce(-sum(amount) FILTER (WHERE amount < 0), 0) AS spent
                FROM credits.transactions t WHERE t.user_id = u.user_id AND t.status = 'completed') l ON true
            WHERE u.decision = 'import' AND (o.user_id IS NOT NULL OR l.total IS NOT NULL)
            ON CONFLICT (user_id) DO UPDATE SET balance = excluded.balance, total_earned = excluded.total_earned,
                total_spent = excluded.total_spent, updated_at = excluded.updated_at
                WHERE (b.balance, b.total_earned, b.total_spent, b.updated_at)
                    IS DISTINCT FROM (excluded.balance, excluded.total_earned, excluded.total_spent, excluded.updated_at)
            RETURNING 1
        )
        SELECT count(*)::bigint FROM placed
        """

    /// Packages (global): a name taken by an earlier package gets ` (legacy <first 8 of id>)`.
    static let placePackages = """
        WITH named AS (
            SELECT p.*, CASE WHEN row_number() OVER (PARTITION BY p.name ORDER BY p.created_at, p.id) = 1 THEN p.name
                ELSE p.name || ' (legacy ' || left(p.id::text, 8) || ')' END AS placed_name
            FROM legacy_credits.packages p
        ),
        placed AS (
            INSERT INTO credits.packages AS k (id, name, description, credits, price_euro_cents, currency, stripe_price_id, active, sort_order,
                metadata, created_at, updated_at)
            SELECT p.id, p.placed_name, coalesce(p.description, ''), p.credits, p.price_euro_cents, 'eur', p.stripe_price_id, p.active,
                p.sort_order, p.metadata, p.created_at, p.updated_at
            FROM named p WHERE p.credits > 0 AND p.price_euro_cents > 0
            ON CONFLICT (id) DO UPDATE SET name = excluded.name, description = excluded.description, credits = excluded.credits,
                price_euro_cents = excluded.price_euro_cents, stripe_price_id = excluded.stripe_price_id, active = excluded.active,
                sort_order = excluded.sort_order, metadata = excluded.metadata, updated_at = excluded.updated_at
                WHERE (k.name, k.description, k.credits, k.price_euro_cents, k.stripe_price_id, k.active, k.sort_order, k.metadata, k.updated_at)
                    IS DISTINCT FROM (excluded.name, excluded.description, excluded.credits, excluded.price_euro_cents, excluded.stripe_price_id,
                        excluded.active, excluded.sort_order, excluded.metadata, excluded.updated_at)
            RETURNING 1
        )
        SELECT count(*)::bigint FROM placed
        """

    static let placePurchases = """
        WITH placed AS (
            INSERT INTO credits.purchases AS x (id, user_id, package_id, credits, price_euro_cents, currency, status, stripe_payment_intent_id,
                stripe_customer_id, metadata, transaction_id, created_at, completed_at)
            SELECT p.id, p.user_id, p.package_id, p.credits, p.price_euro_cents, 'eur', p.status, p.stripe_payment_intent_id,
                p.stripe_customer_id, p.metadata,
                (SELECT t.id FROM credits.transactions t WHERE t.user_id = p.user_id AND t.type = 'purchase'
                    AND t.metadata ->> 'purchaseId' = p.id::text ORDER BY t.seq LIMIT 1),
                p.created_at, p.completed_at
            FROM stage_purchases p JOIN stage_users u ON u.user_id = p.user_id AND u.decision = 'import'
            WHERE \(purchaseIsPlaceable)
            ON CONFLICT (id) DO UPDATE SET status = excluded.status, stripe_payment_intent_id = excluded.stripe_payment_intent_id,
                stripe_customer_id = excluded.stripe_customer_id, metadata = excluded.metadata, transaction_id = excluded.transaction_id,
                completed_at = excluded.completed_at
                WHERE (x.status, x.stripe_payment_intent_id, x.stripe_customer_id, x.metadata, x.transaction_id, x.completed_at)
                    IS DISTINCT FROM (excluded.status, excluded.stripe_payment_intent_id, excluded.stripe_customer_id, excluded.metadata,
                        excluded.transaction_id, excluded.completed_at)
            RETURNING 1
        )
        SELECT count(*)::bigint FROM placed
        """

    /// `amount_charged` becomes the last charge (the original kept the next price there).
    static let placeSubscriptions = """
        WITH placed AS (
            INSERT INTO credits.sync_subscriptions AS x (user_id, active, billing_interval, amount_charged, activated_at, next_charge_at,
                paused_at, is_gifted, gifted_by, gifted_at, created_at, updated_at)
            SELECT s.user_id, s.active, s.billing_interval,
                coalesce((SELECT -t.amount FROM credits.transactions t WHERE t.user_id = s.user_id AND t.app_id = 'sync' AND t.type = 'usage'
                    AND t.status = 'completed' ORDER BY t.seq DESC LIMIT 1), 0),
                s.activated_at, CASE WHEN s.active AND NOT s.is_gifted THEN s.next_charge_at END, s.paused_at, s.is_gifted, s.gifted_by,
                s.gifted_at, s.created_at, s.updated_at
            FROM stage_sync_subscriptions s JOIN stage_users u ON u.user_id = s.user_id AND u.decision = 'import'
            WHERE \(subscriptionIsPlaceable)
            ON CONFLICT (user_id) DO UPDATE SET active = excluded.active, billing_interval = excluded.billing_interval,
                amount_charged = excluded.amount_charged, activated_at = excluded.activated_at, next_charge_at = excluded.next_charge_at,
                paused_at = excluded.paused_at, is_gifted = excluded.is_gifted, gifted_by = excluded.gifted_by, gifted_at = excluded.gifted_at,
                updated_at = excluded.updated_at
                WHERE (x.active, x.billing_interval, x.amount_charged, x.activated_at, x.next_charge_at, x.paused_at, x.is_gifted,
                        x.gifted_by, x.gifted_at, x.updated_at)
                    IS DISTINCT FROM (excluded.active, excluded.billing_interval, excluded.amount_charged, excluded.activated_at,
                        excluded.next_charge_at, excluded.paused_at, excluded.is_gifted, excluded.gifted_by, excluded.gifted_at, excluded.updated_at)
            RETURNING 1
        )
        SELECT count(*)::bigint FROM placed
        """

    static let placeStripeCustomers = """
        WITH placed AS (
            INSERT INTO credits.stripe_customers AS x (user_id, stripe_customer_id, created_at)
            SELECT c.user_id, c.stripe_customer_id, c.created_at
            FROM stage_stripe_customers c JOIN stage_users u ON u.user_id = c.user_id AND u.decision = 'import'
            ON CONFLICT (user_id) DO UPDATE SET stripe_customer_id = excluded.stripe_customer_id
                WHERE x.stripe_customer_id IS DISTINCT FROM excluded.stripe_customer_id
            RETURNING 1
        )
        SELECT count(*)::bigint FROM placed
        """

    /// Gift codes of the batch's imported creators. Binds: $1 BASE_URL, $2 keep e-mails as creator names.
    static let placeGiftCodes = """
        WITH placed AS (
            INSERT INTO gifts.gift_codes AS x (id, code, short_url, creator_id, creator_name, total_credits, redeemed, type, status,
                target_email, message, expires_at, reservation_transaction_id, created_at, updated_at)
            SELECT g.id, g.code, coalesce(g.short_url, $1 || '/g/' || g.code), g.creator_id,
                CASE WHEN $2 OR NOT (\(creatorNameIsEmail)) THEN g.creator_name ELSE left(split_part(g.creator_name, '@', 1), 100) END,
                g.total_credits, g.redeemed <> 0, g.type, g.status, g.target_email, g.message, g.expires_at,
                (SELECT t.id FROM credits.transactions t WHERE t.id = g.reservation_transaction_id), g.created_at, g.updated_at
            FROM stage_gift_codes g JOIN stage_users u ON u.user_id = g.creator_id AND u.decision = 'import'
            WHERE \(giftCodeIsPlaceable)
            ON CONFLICT (id) DO UPDATE SET creator_name = excluded.creator_name, redeemed = excluded.redeemed, status = excluded.status,
                target_email = excluded.target_email, message = excluded.message, expires_at = excluded.expires_at,
                reservation_transaction_id = excluded.reservation_transaction_id, updated_at = excluded.updated_at
                WHERE (x.creator_name, x.redeemed, x.status, x.target_email, x.message, x.expires_at, x.reservation_transaction_id, x.updated_at)
                    IS DISTINCT FROM (excluded.creator_name, excluded.redeemed, excluded.status, excluded.target_email, excluded.message,
                        excluded.expires_at, excluded.reservation_transaction_id, excluded.updated_at)
            RETURNING 1
        )
        SELECT count(*)::bigint FROM placed
        """

    /// Redemptions (whole import) once their code, their transaction and their redeemer are imported.
    static let placeRedemptions = """
        WITH placed AS (
            INSERT INTO gifts.gift_redemptions (id, gift_code_id, redeemer_user_id, status, credits_received, credit_transaction_id,
                source_app_id, created_at)
            SELECT r.id, r.gift_code_id, r.redeemer_user_id, r.status, r.credits_received, r.credit_transaction_id, r.source_app_id, r.created_at
            FROM legacy_credits.gift_redemptions r
            WHERE NOT EXISTS (SELECT 1 FROM gifts.gift_redemptions x WHERE x.id = r.id)
                AND EXISTS (SELECT 1 FROM gifts.gift_codes c WHERE c.id = r.gift_code_id)
                AND (r.credit_transaction_id IS NULL OR EXISTS (SELECT 1 FROM credits.transactions t WHERE t.id = r.credit_transaction_id))
                AND EXISTS (SELECT 1 FROM legacy_credits.users u WHERE u.user_id = r.redeemer_user_id AND u.state = 'imported')
            ORDER BY r.created_at, r.id
            ON CONFLICT DO NOTHING
            RETURNING 1
        )
        SELECT count(*)::bigint FROM placed
        """

    /// Usage per (user, app, UTC day), rebuilt from the batch's imported usage transactions.
    static let placeUsage = """
        WITH rebuilt AS (
            SELECT t.user_id, t.app_id, (t.created_at AT TIME ZONE 'UTC')::date AS day, -sum(t.amount) AS credits_used, count(*)::int AS transactions
            FROM credits.transactions t JOIN stage_users u ON u.user_id = t.user_id AND u.decision = 'import'
            WHERE t.type = 'usage' AND t.status = 'completed'
            GROUP BY 1, 2, 3
        ),
        gone AS (
            DELETE FROM credits.usage_stats s USING stage_users u
            WHERE u.user_id = s.user_id AND u.decision = 'import'
                AND NOT EXISTS (SELECT 1 FROM rebuilt r WHERE (r.user_id, r.app_id, r.day) = (s.user_id, s.app_id, s.day))
            RETURNING 1
        ),
        placed AS (
            INSERT INTO credits.usage_stats AS x (user_id, app_id, day, credits_used, transactions)
            SELECT * FROM rebuilt
            ON CONFLICT (user_id, app_id, day) DO UPDATE SET credits_used = excluded.credits_used, transactions = excluded.transactions
                WHERE (x.credits_used, x.transactions) IS DISTINCT FROM (excluded.credits_used, excluded.transactions)
            RETURNING 1
        )
        SELECT ((SELECT count(*) FROM gone) + (SELECT count(*) FROM placed))::bigint
        """

    /// Placement in order: the ledger first (purchases, subscriptions and codes refer to it).
    static let placeUserRows: [(table: String, sql: String)] = [
        ("credits.transactions", placeTransactions), ("credits.balances", placeBalances), ("credits.purchases", placePurchases),
        ("credits.sync_subscriptions", placeSubscriptions), ("credits.stripe_customers", placeStripeCustomers),
        ("credits.usage_stats", placeUsage),
    ]
}
