import Foundation
import HTTPKit
import Hummingbird
import Logging
import PostgresNIO
import Testing
import TestSupport

@testable import ManaCredits

/// Client addresses for rate limits, and what error texts and logs reveal.
@Suite(.timeLimit(.minutes(3))) struct ExposureTests {
    static func lookup(_ h: CreditsHarness, forwardedFor: String) async throws -> Int {
        try await h.caller.sendText(.get, "/api/v1/gifts/ABCDEFGHJK", headers: [.init("X-Forwarded-For")!: forwardedFor]).status.code
    }

    /// Attack: the gift rate limits keyed on the first `X-Forwarded-For` entry, which the
    /// client writes: a fresh made-up address per request dodged the limit (code guessing
    /// at any speed). Now only the entry the trusted proxy appended (the right-most, with
    /// `TRUSTED_PROXIES=1`) counts, and without trusted proxies the header is ignored.
    @Test func aSpoofedForwardedForCannotDodgeTheGiftLimits() async throws {
        try await CreditsHarness.run(gifts: { $0.lookupLimit = 3; $0.limitWindow = .seconds(3600); $0.trustedProxies = .hops(1) }) { (h: CreditsHarness) async throws in
            var statuses: [Int] = []
            for i in 0..<5 { statuses.append(try await Self.lookup(h, forwardedFor: "10.0.0.\(i), 203.0.113.9")) }
            #expect(statuses == [404, 404, 404, 429, 429])
            // Another client behind the same proxy has its own bucket.
            #expect(try await Self.lookup(h, forwardedFor: "203.0.113.10") == 404)
        }
        try await CreditsHarness.run(gifts: { $0.lookupLimit = 3; $0.limitWindow = .seconds(3600) }) { (h: CreditsHarness) async throws in
            var statuses: [Int] = []
            for i in 0..<5 { statuses.append(try await Self.lookup(h, forwardedFor: "198.51.100.\(i)")) }
            #expect(statuses == [404, 404, 404, 429, 429])
        }
    }

    /// Leak: Stripe's error text (which can describe our account, keys or request) was passed
    /// to the user in a 502. Now the user reads "payment provider error" and the log has Stripe's words.
    @Test func stripesErrorTextIsLoggedNotAnswered() async throws {
        let stripe = try StripeStandIn()
        try await stripe.server.start()
        try await CreditsHarness.run(stripe: { stripe.configure(&$0); $0.secretKey = "sk_test_wrong" }) { (h: CreditsHarness) async throws in
            let ids = try await PurchaseTests.packages(h)
            let refused = try await h.call(.post, "/api/v1/credits/purchase", as: "buyer", json: #"{"packageId": "\#(ids["Starter"]!)"}"#)
            #expect(refused.status == .badGateway && refused.body["message"] == "payment provider error", "\(refused.body)")
            #expect(!"\(refused.body)".contains("API Key"))
        }
        await stripe.server.stop()
    }

    /// Leak: a pending personalized gift code that could not be redeemed was logged by its
    /// code, a bearer credential to the credits, so anyone reading logs could claim it. Now
    /// it is logged by id. The failure is provoked by cancelling the code while
    /// `redeemPending`'s redemption waits on the code's row lock.
    @Test func aPendingGiftIsLoggedByIdNeverByCode() async throws {
        try await CreditsHarness.run { (h: CreditsHarness) async throws in
            try await h.fund("giver", 100)
            let created = try await h.call(.post, "/api/v1/gifts", as: "giver", json: #"{"credits": 10, "targetEmail": "new@example.com"}"#)
            let id = try #require(created.body["id"]?.stringValue)
            let code = try #require(created.body["code"]?.stringValue)
            let logs = LogCapture()
            try await h.withDatabase { client in
                let gifts = GiftRepository(client: client, baseURL: "https://gifts.test", logger: logs.logger())
                let pending = try await client.withTransaction(logger: TestDatabase.logger) { connection in
                    try await connection.query(
                        "UPDATE gifts.gift_codes SET status = 'cancelled' WHERE id = \(id)::uuid", logger: TestDatabase.logger)
                    let pending = Task { try await gifts.redeemPending(userID: "newcomer", email: "new@example.com") }
                    // Wait until the redemption is blocked on the row this transaction holds.
                    for _ in 0..<200 {
                        let waiting = try await client.query(
                            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()",
                            logger: TestDatabase.logger
                        ).decode(Int.self).reduce(0, +)
                        if waiting > 0 { break }
                        try await Task.sleep(for: .milliseconds(25))
                    }
                    return pending
                }
                let result = try await pending.value
                #expect(result.redeemed == 0)
            }
            #expect(logs.text.contains("a pending gift could not be redeemed"))
            #expect(logs.text.contains(id))
            #expect(!logs.text.contains(code))
        }
    }
}
