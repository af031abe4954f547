import Foundation
import HTTPKit
import Hummingbird
import PostgresNIO
import Testing
import TestSupport

@testable import ManaCredits

/// The recurring Cloud Sync renewal cannot be stopped by a user, and never stays active unpaid.
@Suite(.timeLimit(.minutes(3))) struct RenewalSecurityTests {
    static func date(_ text: String) -> Date { Timestamp.parseDate(text)! }

    /// Inserts an active monthly subscription due at `due`.
    static func subscribe(_ user: String, due: Date, anchor: Date, on client: PostgresClient) async throws {
        try await client.query(
            """
            INSERT INTO credits.sync_subscriptions (user_id, active, billing_interval, amount_charged, activated_at, next_charge_at)
            VALUES (\(user), true, 'monthly', 30, \(anchor), \(due))
            """, logger: TestDatabase.logger)
    }

    /// Attack ("free Cloud Sync"): the renewal's key `sync-renewal:<due>` is predictable (the
    /// previous one showed in `GET /credits/transactions`). The user plants the next one as
    /// the idempotencyKey of a 1-credit `POST /credits/use`; the renewal's debit then met the
    /// same key with another amount, answered 409, rolled back, and left the subscription
    /// active and unpaid, run after run. Now the renewal's key lives in `system_key`, which no
    /// user can write, so the renewal charges as usual.
    @Test func aPlantedRenewalKeyCannotStopTheRenewal() async throws {
        let anchor = Self.date("2024-01-10T10:00:00Z")
        let due = BillingCalendar.adding(months: 1, to: anchor)
        try await CreditsHarness.run { (h: CreditsHarness) async throws in
            try await h.fund("freeloader", 100)
            try await h.withDatabase { try await Self.subscribe("freeloader", due: due, anchor: anchor, on: $0) }
            let key = "sync-renewal:\(Timestamp.format(microseconds: Int64((due.timeIntervalSince1970 * 1_000_000).rounded())))"
            let planted = try await h.call(
                .post, "/api/v1/credits/use", as: "freeloader",
                json: #"{"amount": 1, "appId": "notes", "description": "plant", "idempotencyKey": "\#(key)"}"#)
            #expect(planted.status == .ok)
            try await h.withDatabase { client in
                let repository = h.subscriptions(client)
                #expect(await repository.chargeDue(now: due) == .init(charged: 1))
                let subscription = try await repository.subscription(userID: "freeloader")
                #expect(subscription.active && subscription.nextChargeAt == BillingCalendar.adding(months: 2, to: anchor))
            }
            #expect(try await h.call(.get, "/api/v1/credits/balance", as: "freeloader").body["balance"] == 69)
            // The renewal row shows no key a user could copy.
            let rows = try await h.call(.get, "/api/v1/credits/transactions", as: "freeloader").body
            let renewal = try #require(rows.array?.first)
            #expect((renewal["idempotencyKey"] ?? .null) == .null && renewal["amount"] == -30)
            // The only `sync-renewal:` text left is the user's own planted key.
            #expect("\(rows)".components(separatedBy: "sync-renewal:").count == 2)
            #expect(try await h.audit().isEmpty)
        }
    }

    /// Failure: a renewal failing for any reason but missing credits (here a database error,
    /// injected by a trigger) used to roll back and leave the subscription active and unpaid
    /// on every run. Now each failure is counted and logged, retried after a growing backoff,
    /// and after `maxRenewalFailures` runs the subscription pauses with the usual email.
    @Test func aRenewalThatKeepsFailingPausesAfterTheConfiguredRuns() async throws {
        let anchor = Self.date("2024-03-05T08:00:00Z")
        let due = BillingCalendar.adding(months: 1, to: anchor)
        try await CreditsHarness.run { (h: CreditsHarness) async throws in
            try await h.fund("fragile", 1_000)
            try await h.withDatabase { client in
                try await Self.subscribe("fragile", due: due, anchor: anchor, on: client)
                try await client.query(
                    PostgresQuery(
                        unsafeSQL: """
                            CREATE FUNCTION credits.test_fail_renewal() RETURNS trigger AS $$
                            BEGIN
                                IF NEW.user_id = 'fragile' AND NEW.metadata->>'type' = 'sync-renewal' THEN RAISE EXCEPTION 'injected failure'; END IF;
                                RETURN NEW;
                            END $$ LANGUAGE plpgsql
                            """), logger: TestDatabase.logger)
                try await client.query(
                    PostgresQuery(
                        unsafeSQL: """
                            CREATE TRIGGER test_fail_renewal BEFORE INSERT ON credits.transactions
                                FOR EACH ROW EXECUTE FUNCTION credits.test_fail_renewal()
                            """), logger: TestDatabase.logger)
                let metrics = ServiceMetrics()
                var repository = h.subscriptions(client)
                repository.maxRenewalFailures = 3
                repository.renewalRetryBase = .seconds(60)
                repository.metrics = metrics
                #expect(await repository.chargeDue(now: due) == .init(errors: 1))
                #expect(try await repository.subscription(userID: "fragile").active)
                // Backoff: 60 s, then 120 s.
                #expect(await repository.chargeDue(now: due.addingTimeInterval(30)).total == 0)
                #expect(await repository.chargeDue(now: due.addingTimeInterval(61)) == .init(errors: 1))
                #expect(await repository.chargeDue(now: due.addingTimeInterval(161)).total == 0)
                #expect(await repository.chargeDue(now: due.addingTimeInterval(182)) == .init(errors: 1))
                let paused = try await repository.subscription(userID: "fragile")
                #expect(!paused.active && paused.pausedAt != nil && paused.nextChargeAt == nil)
                #expect(await repository.chargeDue(now: due.addingTimeInterval(86_400)).total == 0)
                #expect(metrics.exposition().contains("credits_sync_renewal_failures_total 3"))
                let emails = try await client.query(
                    "SELECT count(*) FROM credits.outbox WHERE payload->>'userId' = 'fragile' AND payload->>'subject' = 'Cloud Sync pausiert'",
                    logger: TestDatabase.logger
                ).decode(Int.self).reduce(0, +)
                #expect(emails == 1)
            }
            #expect(try await h.call(.get, "/api/v1/credits/balance", as: "fragile").body["balance"] == 1_000)
            #expect(try await h.audit().isEmpty)
        }
    }
}
