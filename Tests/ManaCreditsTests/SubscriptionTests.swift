import Foundation
import HTTPKit
import Hummingbird
import PostgresNIO
import Testing
import TestSupport

@testable import ManaCredits

@Suite(.timeLimit(.minutes(3))) struct SubscriptionTests {
    static func date(_ text: String) -> Date { Timestamp.parseDate(text)! }

    @Test func aUserWithoutARowIsInactiveMonthly() async throws {
        try await CreditsHarness.run { (h: CreditsHarness) async throws in
            let expected: JSONValue = ["active": false, "interval": "monthly", "nextChargeAt": nil, "pausedAt": nil, "gifted": false]
            #expect(try await h.call(.get, "/api/v1/sync/status", as: "nobody").body == expected)
            #expect(try await h.call(.get, "/api/v1/internal/sync/status/nobody", service: true).body == expected)
            #expect(try await h.call(.get, "/api/v1/internal/sync/status/nobody").status == .unauthorized)
            #expect(try await h.call(.get, "/api/v1/sync/status").status == .unauthorized)
        }
    }

    @Test func activateDeactivateAndChangeInterval() async throws {
        try await CreditsHarness.run { (h: CreditsHarness) async throws in
            try await h.fund("ann", 100)
            let activated = try await h.call(.post, "/api/v1/sync/activate", as: "ann")
            #expect(activated.status == .ok)
            #expect(activated.body["success"] == true && activated.body["active"] == true)
            #expect(activated.body["interval"] == "monthly" && activated.body["amountCharged"] == 30)
            let next = try #require(activated.body["nextChargeAt"]?.stringValue.flatMap(Timestamp.parseDate))
            #expect(abs(next.timeIntervalSinceNow - 30 * 86_400) < 4 * 86_400)
            #expect(try await h.call(.get, "/api/v1/credits/balance", as: "ann").body["balance"] == 70)
            #expect(try await h.call(.get, "/api/v1/sync/status", as: "ann").body["active"] == true)

            let again = try await h.call(.post, "/api/v1/sync/activate", as: "ann", json: #"{"interval": "yearly"}"#)
            #expect(again.status == .badRequest)
            #expect(try await h.call(.get, "/api/v1/credits/balance", as: "ann").body["balance"] == 70)

            let changed = try await h.call(.post, "/api/v1/sync/change-interval", as: "ann", json: #"{"interval": "quarterly"}"#)
            #expect(changed.status == .ok)
            #expect(changed.body["interval"] == "quarterly" && changed.body["amountCharged"] == 90)
            #expect(changed.body["effectiveAt"] == activated.body["nextChargeAt"])
            #expect(try await h.call(.get, "/api/v1/credits/balance", as: "ann").body["balance"] == 70)

            #expect(try await h.call(.post, "/api/v1/sync/deactivate", as: "ann").body == ["success": true])
            let status = try await h.call(.get, "/api/v1/sync/status", as: "ann").body
            #expect(status["active"] == false && status["nextChargeAt"] == .null && status["interval"] == "quarterly")
            #expect(try await h.call(.post, "/api/v1/sync/deactivate", as: "ann").status == .badRequest)
            #expect(try await h.call(.post, "/api/v1/sync/change-interval", as: "ann", json: #"{"interval": "monthly"}"#).status == .badRequest)

            // Each change told mana-sync (in the background, so wait for it).
            try await eventually { h.sync.requests(to: "/internal/billing/invalidate/ann").count == 3 }
            #expect(h.sync.requests.allSatisfy { $0.headers[.serviceKey] == CreditsHarness.serviceKey })
            #expect(try await h.audit().isEmpty)
        }
    }

    @Test func aShortBalanceIs402AndChangesNothing() async throws {
        try await CreditsHarness.run { (h: CreditsHarness) async throws in
            try await h.fund("poor", 10)
            let refused = try await h.call(.post, "/api/v1/sync/activate", as: "poor", json: #"{"interval": "yearly"}"#)
            #expect(refused.status == .paymentRequired)
            #expect(refused.body["details"] == ["required": 360, "available": 10])
            #expect(try await h.call(.get, "/api/v1/credits/balance", as: "poor").body["balance"] == 10)
            #expect(try await h.call(.get, "/api/v1/sync/status", as: "poor").body["active"] == false)
            let rows = try await h.withDatabase { client in
                try await client.query("SELECT count(*) FROM credits.sync_subscriptions", logger: TestDatabase.logger)
                    .decode(Int.self).reduce(0, +)
            }
            #expect(rows == 0)
        }
    }

    @Test(arguments: [
        (#"{"interval": "weekly"}"#, "interval"), (#"{"interval": 3}"#, "interval"), (#"{"interval": "#, nil),
        ("[1]", nil),
    ] as [(String, String?)])
    func badActivationBodiesAre400(json: String, field: String?) async throws {
        try await CreditsHarness.run { (h: CreditsHarness) async throws in
            try await h.fund("picky", 100)
            let result = try await h.call(.post, "/api/v1/sync/activate", as: "picky", json: json)
            #expect(result.status == .badRequest, "\(result.body)")
            if let field { #expect(result.body["details"]?["field"] == .string(field), "\(result.body)") }
            #expect(try await h.call(.get, "/api/v1/credits/balance", as: "picky").body["balance"] == 100)
        }
    }

    @Test func renewalsKeepTheAnchorDayThroughAYear() async throws {
        // Jan 31 of a leap year, monthly: clamped to each month's end, never drifting.
        let expected = [
            "2024-02-29", "2024-03-31", "2024-04-30", "2024-05-31", "2024-06-30", "2024-07-31", "2024-08-31",
            "2024-09-30", "2024-10-31", "2024-11-30", "2024-12-31", "2025-01-31", "2025-02-28", "2025-03-31",
        ].map { Self.date("\($0)T10:00:00Z") }
        let anchor = Self.date("2024-01-31T10:00:00Z")
        #expect(BillingCalendar.adding(months: 1, to: anchor) == expected[0])
        try await CreditsHarness.run { (h: CreditsHarness) async throws in
            try await h.fund("anchored", 1_000)
            try await h.withDatabase { client in
                try await client.query(
                    """
                    INSERT INTO credits.sync_subscriptions (user_id, active, billing_interval, amount_charged, activated_at, next_charge_at)
                    VALUES ('anchored', true, 'monthly', 30, \(anchor), \(expected[0]))
                    """, logger: TestDatabase.logger)
                let repository = h.subscriptions(client)
                for (due, next) in zip(expected, expected.dropFirst()) {
                    // Just before the due date nothing happens; at it, one charge.
                    #expect(await repository.chargeDue(now: due.addingTimeInterval(-1)).total == 0)
                    #expect(await repository.chargeDue(now: due) == .init(charged: 1))
                    #expect(await repository.chargeDue(now: due) == .init())
                    #expect(try await repository.subscription(userID: "anchored").nextChargeAt == next)
                }
            }
            #expect(try await h.call(.get, "/api/v1/credits/balance", as: "anchored").body["balance"] == .number(Double(1_000 - 13 * 30)))
            #expect(try await h.audit().isEmpty)
        }
    }

    @Test func quarterlyAndOverdueRenewals() {
        let anchor = Self.date("2023-11-30T08:00:00Z")
        var due = BillingCalendar.adding(months: 3, to: anchor)
        var dates: [Date] = []
        for _ in 0..<4 {
            dates.append(due)
            due = BillingCalendar.next(anchor: anchor, due: due, interval: .quarterly, now: due).next
        }
        #expect(dates == ["2024-02-29", "2024-05-30", "2024-08-30", "2024-11-30"].map { Self.date("\($0)T08:00:00Z") })
        // Overdue by several periods: charged once, next one interval from now, re-anchored.
        let now = Self.date("2024-06-20T12:00:00Z")
        let late = BillingCalendar.next(
            anchor: Self.date("2024-01-15T12:00:00Z"), due: Self.date("2024-02-15T12:00:00Z"), interval: .monthly, now: now)
        #expect(late.next == Self.date("2024-07-20T12:00:00Z") && late.anchor == now)
    }

    @Test func concurrentRecurringRunsChargeEachSubscriptionOnce() async throws {
        try await CreditsHarness.run { (h: CreditsHarness) async throws in
            let users = (0..<200).map { String(format: "due-%03d", $0) }
            try await h.withDatabase { client in
                let ledger = LedgerRepository(client: client, logger: TestDatabase.logger)
                for user in users {
                    _ = try await ledger.credit(userID: user, amount: 100, kind: .gift, appID: "test", description: "funding", metadata: nil)
                }
                try await client.query(
                    """
                    INSERT INTO credits.sync_subscriptions (user_id, active, billing_interval, amount_charged, activated_at, next_charge_at)
                    SELECT u, true, 'monthly', 30, now() - interval '1 month', now() - interval '1 minute' FROM unnest(\(users)::text[]) AS u
                    """, logger: TestDatabase.logger)
            }
            let summaries = try await withThrowingTaskGroup(of: JSONValue.self) { group in
                for _ in 0..<5 {
                    group.addTask { try await h.call(.post, "/api/v1/internal/sync/charge-recurring", service: true).body }
                }
                return try await group.reduce(into: [JSONValue]()) { $0.append($1) }
            }
            func sum(_ key: String) -> Double { summaries.compactMap { if case .number(let n)? = $0[key] { n } else { nil } }.reduce(0, +) }
            print("five concurrent charge-recurring runs: \(summaries.map { $0["charged"] ?? .null })")
            #expect(sum("charged") == 200, "\(summaries)")
            #expect(sum("paused") == 0 && sum("errors") == 0)
            let renewals = try await h.withDatabase { client in
                try await client.query(
                    """
                    SELECT count(*), count(DISTINCT user_id) FROM credits.transactions
                    WHERE metadata->>'type' = 'sync-renewal'
                    """, logger: TestDatabase.logger
                ).decode((Int, Int).self).reduce(into: [(Int, Int)]()) { $0.append($1) }
            }
            #expect(renewals.first! == (200, 200))
            #expect(try await h.call(.get, "/api/v1/credits/balance", as: "due-123").body["balance"] == 70)
            #expect(try await h.audit().isEmpty)
            // Nothing is due any more.
            #expect(try await h.call(.post, "/api/v1/internal/sync/charge-recurring", service: true).body["total"] == 0)
            #expect(try await h.call(.post, "/api/v1/internal/sync/charge-recurring").status == .unauthorized)
        }
    }

    @Test func aShortBalancePausesAndTheEmailArrivesOnceNotifyIsBack() async throws {
        try await CreditsHarness.run { (h: CreditsHarness) async throws in
            try await h.fund("broke", 5)
            try await h.withDatabase { client in
                try await client.query(
                    """
                    INSERT INTO credits.sync_subscriptions (user_id, active, billing_interval, amount_charged, activated_at, next_charge_at)
                    VALUES ('broke', true, 'monthly', 30, now() - interval '1 month', now() - interval '1 hour')
                    """, logger: TestDatabase.logger)
            }
            await h.notify.stop()
            let run = try await h.call(.post, "/api/v1/internal/sync/charge-recurring", service: true)
            #expect(run.body == ["charged": 0, "paused": 1, "errors": 0, "total": 1])
            let status = try await h.call(.get, "/api/v1/sync/status", as: "broke").body
            #expect(status["active"] == false && status["pausedAt"] != .null && status["nextChargeAt"] == .null)
            #expect(try await h.call(.get, "/api/v1/credits/balance", as: "broke").body["balance"] == 5)
            #expect(try await h.call(.post, "/api/v1/internal/sync/charge-recurring", service: true).body["total"] == 0)
            try await eventually { h.sync.requests(to: "/internal/billing/invalidate/broke").count == 1 }

            // mana-notify is down: the sender keeps retrying.
            try await eventually {
                (try? await h.withDatabase { client in
                    try await client.query("SELECT attempts FROM credits.outbox", logger: TestDatabase.logger).decode(Int32.self)
                        .reduce(0, +)
                }) ?? 0 >= 2
            }
            try await h.notify.start()
            try await eventually(within: .seconds(10)) { h.notify.requests(to: "/api/v1/notifications/send").count == 1 }
            let email = try #require(h.notify.requests.first)
            #expect(email.headers[.serviceKey] == CreditsHarness.serviceKey)
            let body = try JSONDecoder().decode(JSONValue.self, from: Data(email.body.utf8))
            #expect(body["channel"] == "email" && body["appId"] == "sync" && body["userId"] == "broke")
            #expect(body["subject"] == "Cloud Sync pausiert")
            #expect(body["body"]?.stringValue?.contains("pausiert") == true)
            #expect(body["data"]?["type"] == "sync-paused")
            #expect(body["data"]?["resumeUrl"] == .string(h.configuration.subscriptions.resumeURL))
            // Delivered once, and marked so.
            try await Task.sleep(for: .milliseconds(600))
            #expect(h.notify.requests.count == 1)
            let undelivered = try await h.withDatabase { client in
                try await client.query("SELECT count(*) FROM credits.outbox WHERE delivered_at IS NULL", logger: TestDatabase.logger)
                    .decode(Int.self).reduce(0, +)
            }
            #expect(undelivered == 0)
        }
    }

    @Test func giftsAreForAdminsAndNeverCharged() async throws {
        try await CreditsHarness.run { (h: CreditsHarness) async throws in
            let admin = try await h.token("root", role: "admin")
            func asAdmin(_ method: HTTPRequest.Method, _ uri: String) async throws -> (status: HTTPResponse.Status, body: JSONValue) {
                try await h.caller.send(method, uri, headers: [.authorization: "Bearer \(admin)"])
            }
            #expect(try await h.call(.post, "/api/v1/admin/sync/friend/gift", as: "mallory").status == .forbidden)
            #expect(try await h.call(.get, "/api/v1/admin/sync/friend", as: "mallory").status == .forbidden)
            #expect(try await h.call(.delete, "/api/v1/admin/sync/friend/gift", as: "mallory").status == .forbidden)

            let granted = try await asAdmin(.post, "/api/v1/admin/sync/friend/gift")
            #expect(granted.body == ["success": true, "userId": "friend", "gifted": true, "active": true])
            let seen = try await asAdmin(.get, "/api/v1/admin/sync/friend").body
            #expect(seen["gifted"] == true && seen["giftedBy"] == "root" && seen["giftedAt"] != .null && seen["nextChargeAt"] == .null)
            #expect(try await h.call(.post, "/api/v1/sync/activate", as: "friend").status == .badRequest)
            #expect(try await h.call(.post, "/api/v1/sync/deactivate", as: "friend").status == .badRequest)

            // Even a gifted row with a past date is never charged.
            try await h.withDatabase { client in
                try await client.query(
                    "UPDATE credits.sync_subscriptions SET next_charge_at = now() - interval '1 day' WHERE user_id = 'friend'",
                    logger: TestDatabase.logger)
            }
            #expect(try await h.call(.post, "/api/v1/internal/sync/charge-recurring", service: true).body["total"] == 0)

            #expect(try await asAdmin(.delete, "/api/v1/admin/sync/stranger/gift").status == .notFound)
            try await h.fund("payer", 30)
            #expect(try await h.call(.post, "/api/v1/sync/activate", as: "payer").status == .ok)
            #expect(try await asAdmin(.delete, "/api/v1/admin/sync/payer/gift").status == .badRequest)
            let revoked = try await asAdmin(.delete, "/api/v1/admin/sync/friend/gift")
            #expect(revoked.body == ["success": true, "userId": "friend", "gifted": false, "active": false])
            let after = try await asAdmin(.get, "/api/v1/admin/sync/friend").body
            #expect(after["active"] == false && after["gifted"] == false && after["giftedBy"] == .null)
            try await eventually { h.sync.requests(to: "/internal/billing/invalidate/friend").count == 2 }
        }
    }

    @Test func theSchedulerChargesOnItsIntervalAndStopsCleanly() async throws {
        try await CreditsHarness.run(subscriptions: { $0.chargeInterval = .milliseconds(300) }) { (h: CreditsHarness) async throws in
            try await h.fund("regular", 100)
            try await h.withDatabase { client in
                try await client.query(
                    """
                    INSERT INTO credits.sync_subscriptions (user_id, active, billing_interval, amount_charged, activated_at, next_charge_at)
                    VALUES ('regular', true, 'monthly', 30, now() - interval '1 month', now() - interval '1 minute')
                    """, logger: TestDatabase.logger)
            }
            try await eventually(within: .seconds(5)) {
                (try? await h.call(.get, "/api/v1/credits/balance", as: "regular").body["balance"]) == 70
            }
            try await eventually(within: .seconds(5)) {
                let metrics = (try? await h.caller.sendText(.get, "/metrics").text) ?? ""
                return metrics.split(separator: "\n").contains { line in
                    line.hasPrefix("credits_sync_renewal_runs_total ") && (Double(line.split(separator: " ").last ?? "") ?? 0) >= 3
                }
            }
            // Charged once, however many runs came after.
            #expect(try await h.call(.get, "/api/v1/credits/balance", as: "regular").body["balance"] == 70)
        }
        // CreditsHarness.run returning means the service, scheduler and sender included, stopped
        // within LiveService's shutdown limit; a scheduler that ignored shutdown fails the test.
    }
}

extension CreditsHarness {
    /// A repository on `client` wired to this harness's stand-ins, for driving the clock.
    func subscriptions(_ client: PostgresClient) -> SubscriptionRepository {
        SubscriptionRepository(
            client: client,
            notifier: SyncInvalidator(syncURL: sync.baseURL, timeout: .seconds(30), serviceKey: Self.serviceKey, metrics: ServiceMetrics(), logger: TestDatabase.logger),
            outbox: WakeSignal(), resumeURL: configuration.subscriptions.resumeURL, logger: TestDatabase.logger)
    }
}
