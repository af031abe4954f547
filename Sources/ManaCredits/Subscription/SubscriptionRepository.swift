import Foundation
import HTTPKit
import Logging
import PostgresNIO

/// The Cloud Sync subscription in `credits.sync_subscriptions`: activation, the recurring
/// charge, gifts. Every change is one transaction with its ledger entry (and its outbox
/// message), and tells mana-sync to drop its cached answer after commit.
struct SubscriptionRepository: Sendable {
    let client: PostgresClient
    let notifier: SyncInvalidator
    let outbox: WakeSignal
    let resumeURL: String
    let logger: Logger
    /// Renewals the recurring charge runs at once.
    var chargeConcurrency = 4
    /// Failed renewal runs (other than missing credits) after which a subscription pauses.
    var maxRenewalFailures = 3
    /// Wait before retrying a failed renewal; doubles per failure, at most a day.
    var renewalRetryBase: Duration = .seconds(300)
    var metrics = ServiceMetrics()

    /// What one recurring-charge run did.
    struct ChargeSummary: Sendable, Equatable, Encodable {
        var charged = 0
        var paused = 0
        var errors = 0
        var total: Int { charged + paused + errors }

        private enum CodingKeys: String, CodingKey { case charged, paused, errors, total }

        /// `{charged, paused, errors, total}`.
        func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(charged, forKey: .charged)
            try container.encode(paused, forKey: .paused)
            try container.encode(errors, forKey: .errors)
            try container.encode(total, forKey: .total)
        }
    }

    private static let columns = """
        user_id, active, billing_interval, amount_charged, activated_at, next_charge_at, paused_at, is_gifted, gifted_by, gifted_at
        """

    // MARK: Reading

    func subscription(userID: String) async throws -> Subscription {
        try await client.withGuardedConnection { connection in
            try await Self.row(userID, forUpdate: false, on: connection, logger: logger) ?? Subscription(userID: userID)
        }
    }

    /// Whether a row exists (admin revoke answers 404 without one).
    private static func row(_ userID: String, forUpdate: Bool, on connection: PostgresConnection, logger: Logger) async throws
        -> Subscription?
    {
        let query: PostgresQuery =
            forUpdate
            ? "SELECT \(unescaped: columns) FROM credits.sync_subscriptions WHERE user_id = \(userID) FOR UPDATE"
            : "SELECT \(unescaped: columns) FROM credits.sync_subscriptions WHERE user_id = \(userID)"
        return try await first(try await connection.query(query, logger: logger))
    }

    /// The first row of a `SELECT columns …`, as a subscription.
    private static func first(_ rows: PostgresRowSequence) async throws -> Subscription? {
        for try await row in rows.decode((String, Bool, String, Int64, Date?, Date?, Date?, Bool, String?, Date?).self) {
            var subscription = Subscription(userID: row.0)
            subscription.active = row.1
            subscription.interval = BillingInterval(rawValue: row.2) ?? .monthly
            subscription.amountCharged = row.3
            subscription.activatedAt = row.4
            subscription.nextChargeAt = row.5
            subscription.pausedAt = row.6
            subscription.isGifted = row.7
            subscription.giftedBy = row.8
            subscription.giftedAt = row.9
            return subscription
        }
        return nil
    }

    /// Creates the user's row if missing and locks it for the rest of the transaction.
    private static func lockedRow(_ userID: String, on connection: PostgresConnection, logger: Logger) async throws -> Subscription {
        try await connection.query(
            "INSERT INTO credits.sync_subscriptions (user_id) VALUES (\(userID)) ON CONFLICT DO NOTHING", logger: logger)
        guard let row = try await row(userID, forUpdate: true, on: connection, logger: logger) else {
            throw APIError(.internalServerError, message: "subscription row vanished")
        }
        return row
    }

    private static func save(_ s: Subscription, on connection: PostgresConnection, logger: Logger) async throws {
        try await connection.query(
            """
            UPDATE credits.sync_subscriptions SET active = \(s.active), billing_interval = \(s.interval.rawValue),
                amount_charged = \(s.amountCharged), activated_at = \(s.activatedAt), next_charge_at = \(s.nextChargeAt),
                paused_at = \(s.pausedAt), is_gifted = \(s.isGifted), gifted_by = \(s.giftedBy), gifted_at = \(s.giftedAt),
                updated_at = now()
            WHERE user_id = \(s.userID)
            """, logger: logger)
    }

    /// Runs `change` on the locked row in one transaction, then tells mana-sync.
    private func change<T: Sendable>(_ userID: String, _ change: @escaping @Sendable (inout Subscription, PostgresConnection) async throws -> T)
        async throws -> T
    {
        let result = try await client.withGuardedTransaction(logger: logger) { connection in
            var subscription = try await Self.lockedRow(userID, on: connection, logger: logger)
            let result = try await change(&subscription, connection)
            try await Self.save(subscription, on: connection, logger: logger)
            return result
        }
        await notifier.invalidate(userID: userID)
        return result
    }

    // MARK: The user's own routes

    /// Debits the interval's price and activates, in one transaction. 400 when active or
    /// gifted, 402 when short (nothing changes).
    func activate(userID: String, interval: BillingInterval, now: Date = Date()) async throws -> Subscription {
        try await change(userID) { subscription, connection in
            guard !subscription.isGifted else { throw APIError.badRequest("Sync is already gifted — no activation needed") }
            guard !subscription.active else { throw APIError.badRequest("Sync is already active") }
            _ = try await LedgerRepository.debit(
                .init(
                    userID: userID, amount: interval.price, appID: "sync", description: "Cloud Sync (\(interval.rawValue))",
                    idempotencyKey: nil, metadata: ["type": "sync-activation", "interval": .string(interval.rawValue)]),
                on: connection, logger: logger)
            subscription.active = true
            subscription.interval = interval
            subscription.amountCharged = interval.price
            subscription.activatedAt = now
            subscription.nextChargeAt = BillingCalendar.adding(months: interval.months, to: now)
            subscription.pausedAt = nil
            return subscription
        }
    }

    /// Stops renewals. 400 when not active or gifted.
    func deactivate(userID: String) async throws {
        try await change(userID) { subscription, _ in
            guard !subscription.isGifted else { throw APIError.badRequest("Sync is gifted — contact support to revoke") }
            guard subscription.active else { throw APIError.badRequest("Sync is not active") }
            subscription.active = false
            subscription.nextChargeAt = nil
        }
    }

    /// The new interval's price applies from the next charge. 400 when not active.
    func changeInterval(userID: String, to interval: BillingInterval) async throws -> Subscription {
        try await change(userID) { subscription, _ in
            guard subscription.active, !subscription.isGifted else { throw APIError.badRequest("Sync is not active") }
            subscription.interval = interval
            return subscription
        }
    }

    // MARK: Admin

    /// Grants Cloud Sync as a gift (re-granting refreshes who and when).
    func gift(userID: String, by admin: String, now: Date = Date()) async throws -> Subscription {
        try await change(userID) { subscription, _ in
            subscription.active = true
            subscription.isGifted = true
            subscription.giftedBy = admin
            subscription.giftedAt = now
            subscription.nextChargeAt = nil
            subscription.pausedAt = nil
            return subscription
        }
    }

    /// Revokes a gift: 404 without a row, 400 when not gifted.
    func revokeGift(userID: String) async throws -> Subscription {
        let exists = try await client.withGuardedConnection { try await Self.row(userID, forUpdate: false, on: $0, logger: logger) } != nil
        guard exists else { throw APIError.notFound("no Cloud Sync subscription for this user") }
        return try await change(userID) { subscription, _ in
            guard subscription.isGifted else { throw APIError.badRequest("Sync is not gifted — nothing to revoke") }
            subscription.active = false
            subscription.isGifted = false
            subscription.giftedBy = nil
            subscription.giftedAt = nil
            subscription.nextChargeAt = nil
            return subscription
        }
    }

    // MARK: The recurring charge

    /// Charges every active, non-gifted subscription due at `now`, at most once per due date,
    /// in batches; one user's failure does not stop the others. Safe to run concurrently on
    /// one or several replicas: rows another run holds are skipped, and a renewal's ledger
    /// entry carries the idempotency key `sync-renewal:<due date>`.
    /// Renewals run `chargeConcurrency` at a time (each is its own short transaction on its
    /// own pooled connection; rows are independent).
    ///
    /// Every run, however started (the in-process scheduler or `charge-recurring`), counts
    /// `credits_sync_renewal_runs_total` and its outcomes in `credits_sync_renewals_total`.
    func chargeDue(now: Date = Date(), batchSize: Int = 100) async -> ChargeSummary {
        let summary = await chargeDueBatches(now: now, batchSize: batchSize)
        metrics.count("credits_sync_renewal_runs_total")
        metrics.count("credits_sync_renewals_total", [("outcome", "charged")], by: summary.charged)
        metrics.count("credits_sync_renewals_total", [("outcome", "paused")], by: summary.paused)
        metrics.count("credits_sync_renewals_total", [("outcome", "failed")], by: summary.errors)
        metrics.set("credits_sync_renewal_last_run_timestamp_seconds", to: Date().timeIntervalSince1970)
        return summary
    }

    private func chargeDueBatches(now: Date, batchSize: Int) async -> ChargeSummary {
        var summary = ChargeSummary()
        var cursor = ""
        while true {
            let after = cursor
            let batch: [String]
            do {
                batch = try await client.withGuardedConnection { connection in
                    try await connection.query(
                        """
                        SELECT user_id FROM credits.sync_subscriptions
                        WHERE active AND NOT is_gifted AND next_charge_at <= \(now) AND user_id > \(after)
                            AND (renewal_retry_at IS NULL OR renewal_retry_at <= \(now))
                        ORDER BY user_id LIMIT \(batchSize)
                        """, logger: logger
                    ).decode(String.self).reduce(into: []) { $0.append($1) }
                }
            } catch {
                logger.error("recurring charge could not list due subscriptions", metadata: ["error": "\(String(reflecting: error))"])
                summary.errors += 1
                return summary
            }
            await withTaskGroup(of: (String, Result<Renewal, any Error>).self) { group in
                func record(_ outcome: (String, Result<Renewal, any Error>)) {
                    switch outcome.1 {
                    case .success(.charged): summary.charged += 1
                    case .success(.paused): summary.paused += 1
                    case .success(.skipped): break
                    // Logged, counted and scheduled for a retry (or paused) by recordFailure.
                    case .failure: summary.errors += 1
                    }
                }
                var running = 0
                for userID in batch {
                    if running >= max(1, chargeConcurrency), let outcome = await group.next() {
                        record(outcome)
                        running -= 1
                    }
                    group.addTask {
                        do {
                            return (userID, .success(try await renew(userID: userID, now: now)))
                        } catch {
                            await recordFailure(userID: userID, error: error, now: now)
                            return (userID, .failure(error))
                        }
                    }
                    running += 1
                }
                for await outcome in group { record(outcome) }
            }
            guard batch.count == batchSize, let last = batch.last else { return summary }
            cursor = last
        }
    }

    enum Renewal: Sendable { case charged, paused, skipped }

    private func renew(userID: String, now: Date) async throws -> Renewal {
        let outcome: Renewal = try await client.withGuardedTransaction(logger: logger) { connection in
            let found = try await Self.first(
                try await connection.query(
                    """
                    SELECT \(unescaped: Self.columns) FROM credits.sync_subscriptions
                    WHERE user_id = \(userID) AND active AND NOT is_gifted AND next_charge_at <= \(now)
                        AND (renewal_retry_at IS NULL OR renewal_retry_at <= \(now))
                    FOR UPDATE SKIP LOCKED
                    """, logger: logger))
            // Charged (or being charged) by another run.
            guard var subscription = found, let due = subscription.nextChargeAt else { return .skipped }
            let interval = subscription.interval
            do {
                // The key lives in the ledger's system_key column, which no user can write:
                // a planted idempotencyKey cannot make this debit a 409.
                var debit = LedgerRepository.DebitRequest(
                    userID: userID, amount: interval.price, appID: "sync", description: "Cloud Sync renewal (\(interval.rawValue))",
                    idempotencyKey: nil,
                    metadata: ["type": "sync-renewal", "interval": .string(interval.rawValue), "dueAt": .string(Timestamp.iso8601(due))])
                debit.systemKey = "sync-renewal:\(Timestamp.format(microseconds: Int64((due.timeIntervalSince1970 * 1_000_000).rounded())))"
                _ = try await LedgerRepository.debit(debit, on: connection, logger: logger)
            } catch let error as APIError where error.status == .paymentRequired {
                try await Self.pause(userID: userID, interval: interval, now: now, resumeURL: resumeURL, on: connection, logger: logger)
                return .paused
            }
            let (next, anchor) = BillingCalendar.next(anchor: subscription.activatedAt ?? due, due: due, interval: interval, now: now)
            subscription.nextChargeAt = next
            try await connection.query(
                """
                UPDATE credits.sync_subscriptions SET next_charge_at = \(next), activated_at = \(anchor),
                    amount_charged = \(interval.price), paused_at = NULL, renewal_failures = 0, renewal_retry_at = NULL, updated_at = now()
                WHERE user_id = \(userID)
                """, logger: logger)
            return .charged
        }
        if outcome == .paused {
            outbox.wake()
            await notifier.invalidate(userID: userID)
        }
        return outcome
    }

    /// Pauses an unpaid subscription and writes the "Cloud Sync pausiert" email, in the caller's transaction.
    private static func pause(
        userID: String, interval: BillingInterval, now: Date, resumeURL: String, on connection: PostgresConnection, logger: Logger
    ) async throws {
        try await connection.query(
            """
            UPDATE credits.sync_subscriptions SET active = false, paused_at = \(now), next_charge_at = NULL, renewal_failures = 0,
                renewal_retry_at = NULL, updated_at = now()
            WHERE user_id = \(userID)
            """, logger: logger)
        try await Outbox.enqueue(
            path: "/api/v1/notifications/send", payload: Self.pausedEmail(userID: userID, interval: interval, resumeURL: resumeURL),
            on: connection, logger: logger)
    }

    /// A renewal that failed for any reason but missing credits: counted, logged with the
    /// user, retried after `renewalRetryBase`·2^(failures-1) (at most a day), and after
    /// `maxRenewalFailures` failed runs paused like an unpaid one, so it never stays active unpaid.
    private func recordFailure(userID: String, error: any Error, now: Date) async {
        metrics.count("credits_sync_renewal_failures_total")
        logger.error("recurring charge failed for one user", metadata: ["user_id": "\(userID)", "error": "\(String(reflecting: error))"])
        do {
            let paused = try await client.withGuardedTransaction(logger: logger) { connection -> Bool in
                let rows = try await connection.query(
                    """
                    UPDATE credits.sync_subscriptions SET renewal_failures = renewal_failures + 1, updated_at = now()
                    WHERE user_id = \(userID) AND active AND NOT is_gifted
                    RETURNING renewal_failures, billing_interval
                    """, logger: logger
                ).decode((Int, String).self).reduce(into: [(Int, String)]()) { $0.append($1) }
                guard let (failures, interval) = rows.first else { return false }
                if failures >= maxRenewalFailures {
                    try await Self.pause(
                        userID: userID, interval: BillingInterval(rawValue: interval) ?? .monthly, now: now, resumeURL: resumeURL,
                        on: connection, logger: logger)
                    return true
                }
                let delay = min(renewalRetryBase.inSeconds * pow(2, Double(failures - 1)), 86_400)
                try await connection.query(
                    """
                    UPDATE credits.sync_subscriptions SET renewal_retry_at = \(now.addingTimeInterval(delay)) WHERE user_id = \(userID)
                    """, logger: logger)
                return false
            }
            if paused {
                metrics.count("credits_sync_renewal_failure_pauses_total")
                logger.error(
                    "Cloud Sync paused after repeated renewal failures", metadata: ["user_id": "\(userID)", "failures": "\(maxRenewalFailures)"])
                outbox.wake()
                await notifier.invalidate(userID: userID)
            }
        } catch {
            logger.error(
                "could not record a failed renewal", metadata: ["user_id": "\(userID)", "error": "\(String(reflecting: error))"])
        }
    }

    /// The "Cloud Sync pausiert" email for mana-notify.
    static func pausedEmail(userID: String, interval: BillingInterval, resumeURL: String) -> JSONValue {
        [
            "channel": "email", "appId": "sync", "userId": .string(userID), "subject": "Cloud Sync pausiert",
            "body": .string(
                "Dein Cloud Sync wurde pausiert, weil dein Guthaben für die Verlängerung (\(interval.price) Credits) nicht ausreicht. "
                    + "Deine Daten bleiben auf deinen Geräten erhalten. Lade Credits auf und aktiviere Cloud Sync in den Einstellungen wieder, "
                    + "um weiter zu synchronisieren."),
            "data": ["type": "sync-paused", "resumeUrl": .string(resumeURL)],
        ]
    }
}
