import Foundation
import HTTPKit
import Hummingbird
import PostgresNIO
import Testing
import TestSupport

@testable import ManaCredits

/// Stripe refunds and disputes take purchased credits back; what was already spent or given
/// away becomes a debt that later credits pay first.
@Suite(.timeLimit(.minutes(3))) struct StripeReversalTests {
    /// A signed event whose object is a Charge or Dispute of `intent`.
    static func event(id: String, type: String, object: String) -> (body: String, signature: String) {
        let body = #"{"id":"\#(id)","object":"event","type":"\#(type)","data":{"object":\#(object)}}"#
        return (
            body,
            StripeStandIn.signature(
                payload: Data(body.utf8), secrets: [StripeStandIn.webhookSecret], timestamp: Int(Date().timeIntervalSince1970))
        )
    }

    static func charge(intent: String, amount: Int, refunded: Int) -> String {
        #"{"id":"ch_1","object":"charge","payment_intent":"\#(intent)","amount":\#(amount),"amount_refunded":\#(refunded),"refunded":\#(refunded >= amount)}"#
    }

    static func dispute(intent: String, status: String) -> String {
        #"{"id":"dp_1","object":"dispute","charge":"ch_1","payment_intent":"\#(intent)","amount":500,"status":"\#(status)"}"#
    }

    /// Buys `package` as `user` and completes it through the webhook; returns (purchase id, intent).
    static func buy(_ h: CreditsHarness, _ package: String, as user: String) async throws -> (String, String) {
        let ids = try await PurchaseTests.packages(h)
        let started = try await h.call(.post, "/api/v1/credits/purchase", as: user, json: #"{"packageId": "\#(ids[package]!)"}"#)
        let purchaseID = try #require(started.body["purchaseId"]?.stringValue)
        let intent = try #require(
            try await h.call(.get, "/api/v1/credits/purchase/\(purchaseID)", as: user).body["stripePaymentIntentId"]?.stringValue)
        let succeeded = StripeStandIn.event(id: "evt_ok_\(purchaseID)", type: "payment_intent.succeeded", intent: intent, purchaseID: purchaseID)
        #expect(try await PurchaseTests.webhook(h, succeeded).status == .ok)
        return (purchaseID, intent)
    }

    static func status(_ h: CreditsHarness, _ purchaseID: String, _ user: String) async throws -> JSONValue? {
        try await h.call(.get, "/api/v1/credits/purchase/\(purchaseID)", as: user).body["status"]
    }

    /// Attack: buy credits, then get the money back with a Stripe refund; the credits stayed.
    /// Now `charge.refunded` takes back ⌈credits · refunded/amount⌉ (cumulative over partial
    /// refunds), once per event, and marks the purchase `partially_refunded`/`refunded`.
    @Test func aStripeRefundTakesThePurchasedCreditsBack() async throws {
        let stripe = try StripeStandIn()
        try await stripe.server.start()
        try await CreditsHarness.run(stripe: { stripe.configure(&$0) }) { (h: CreditsHarness) async throws in
            let (purchaseID, intent) = try await Self.buy(h, "Standard", as: "refunder")  // 1,050 credits for €10.00
            #expect(try await PurchaseTests.balance(h, "refunder") == 1_050)
            let partial = Self.event(id: "evt_r1", type: "charge.refunded", object: Self.charge(intent: intent, amount: 1_000, refunded: 333))
            #expect(try await PurchaseTests.webhook(h, partial).status == .ok)
            #expect(try await PurchaseTests.webhook(h, partial).status == .ok)  // a replay takes nothing more
            #expect(try await PurchaseTests.balance(h, "refunder") == .number(1_050 - 350))  // ⌈349.65⌉
            #expect(try await Self.status(h, purchaseID, "refunder") == "partially_refunded")
            let full = Self.event(id: "evt_r2", type: "charge.refunded", object: Self.charge(intent: intent, amount: 1_000, refunded: 1_000))
            #expect(try await PurchaseTests.webhook(h, full).status == .ok)
            #expect(try await PurchaseTests.balance(h, "refunder") == 0)
            #expect(try await Self.status(h, purchaseID, "refunder") == "refunded")
            let rows = try await h.call(.get, "/api/v1/credits/transactions", as: "refunder").body.array ?? []
            #expect(rows.prefix(2).map { $0["type"] } == ["reversal", "reversal"])
            #expect(try await h.audit().isEmpty)
        }
        await stripe.server.stop()
    }

    /// Attack: buy credits, give them away with a gift code (to another account), then
    /// dispute the charge; the credits stayed with the other account and the dispute cost
    /// nothing. Now `charge.dispute.created` takes back what the balance holds and records
    /// the rest as a debt; later credits (here a service refund) pay the debt first; a won
    /// dispute (`charge.dispute.closed`, `won`) gives the credits back.
    @Test func aDisputeTakesCreditsBackAndTheRestBecomesADebt() async throws {
        let stripe = try StripeStandIn()
        try await stripe.server.start()
        try await CreditsHarness.run(stripe: { stripe.configure(&$0) }) { (h: CreditsHarness) async throws in
            let (purchaseID, intent) = try await Self.buy(h, "Starter", as: "disputer")  // 500 credits
            let gift = try await h.call(.post, "/api/v1/gifts", as: "disputer", json: #"{"credits": 400}"#)
            #expect(gift.status == .created)
            #expect(try await PurchaseTests.balance(h, "disputer") == 100)

            let opened = Self.event(id: "evt_d1", type: "charge.dispute.created", object: Self.dispute(intent: intent, status: "needs_response"))
            #expect(try await PurchaseTests.webhook(h, opened).status == .ok)
            #expect(try await PurchaseTests.webhook(h, opened).status == .ok)
            let again = Self.event(id: "evt_d2", type: "charge.dispute.created", object: Self.dispute(intent: intent, status: "needs_response"))
            #expect(try await PurchaseTests.webhook(h, again).status == .ok)
            #expect(try await PurchaseTests.balance(h, "disputer") == 0)
            #expect(try await Self.status(h, purchaseID, "disputer") == "disputed")
            func debt() async throws -> Int64 {
                try await h.withDatabase { client in
                    try await client.query("SELECT debt FROM credits.balances WHERE user_id = 'disputer'", logger: TestDatabase.logger)
                        .decode(Int64.self).reduce(0, +)
                }
            }
            #expect(try await debt() == 400)
            // A debtor cannot spend.
            #expect(try await h.call(.post, "/api/v1/credits/use", as: "disputer", json: #"{"amount": 1, "appId": "a", "description": "d"}"#).status == .paymentRequired)

            // Later credits pay the debt first.
            try await h.fund("disputer", 150)
            #expect(try await PurchaseTests.balance(h, "disputer") == 0)
            #expect(try await debt() == 250)
            #expect(try await h.audit().isEmpty)

            let won = Self.event(id: "evt_d3", type: "charge.dispute.closed", object: Self.dispute(intent: intent, status: "won"))
            #expect(try await PurchaseTests.webhook(h, won).status == .ok)
            #expect(try await PurchaseTests.webhook(h, won).status == .ok)
            // 100 left + 150 funded: as if there had been no dispute.
            #expect(try await PurchaseTests.balance(h, "disputer") == 250)
            #expect(try await debt() == 0)
            #expect(try await Self.status(h, purchaseID, "disputer") == "completed")
            #expect(try await h.audit().isEmpty)
        }
        await stripe.server.stop()
    }

    /// The audit notices a debt that does not match its history.
    @Test func theAuditChecksDebts() async throws {
        try await CreditsHarness.run { (h: CreditsHarness) async throws in
            try await h.withDatabase { client in
                try await client.query("INSERT INTO credits.balances (user_id, debt) VALUES ('owes', 5)", logger: TestDatabase.logger)
            }
            #expect(try await h.audit().contains { $0.hasPrefix("debt differs from the sum of its history") })
        }
    }
}
