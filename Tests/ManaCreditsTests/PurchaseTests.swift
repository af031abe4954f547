import Foundation
import HTTPKit
import Hummingbird
import PostgresNIO
import Testing
import TestSupport

@testable import ManaCredits

extension StripeStandIn {
    /// The settings that point mana-credits at this stand-in.
    func configure(_ settings: inout StripeSettings) {
        settings.secretKey = Self.secretKey
        settings.webhookSecret = Self.webhookSecret
        settings.apiBase = server.baseURL
        // Generous: a loaded machine running a debug build answers slowly (no test waits for it).
        settings.timeout = .seconds(20)
    }
}

@Suite(.timeLimit(.minutes(3))) struct PurchaseTests {
    /// Installs the default packages plus a declined-price one; returns name → id.
    static func packages(_ h: CreditsHarness) async throws -> [String: String] {
        try await h.withDatabase { client in
            let repository = PackageRepository(client: client, logger: TestDatabase.logger)
            for package in PackageRepository.defaults {
                try await repository.upsert(
                    name: package.name, description: package.description, credits: package.credits, priceEuroCents: package.priceEuroCents, sortOrder: 0)
            }
            try await repository.upsert(name: "Declined", description: "", credits: 666, priceEuroCents: 666, sortOrder: 9)
            try await repository.upsert(name: "Old", description: "", credits: 10, priceEuroCents: 10, sortOrder: 9)
            _ = try await repository.deactivate(name: "Old")
            return Dictionary(uniqueKeysWithValues: try await repository.list(activeOnly: false).map { ($0.name, $0.id) })
        }
    }

    static func webhook(_ h: CreditsHarness, _ event: (body: String, signature: String)?) async throws -> (status: HTTPResponse.Status, body: JSONValue) {
        var headers: HTTPFields = [.contentType: "application/json"]
        if let signature = event?.signature { headers[.init("Stripe-Signature")!] = signature }
        return try await h.caller.send(.post, "/api/v1/webhooks/stripe", headers: headers, body: event?.body ?? "{}")
    }

    static func balance(_ h: CreditsHarness, _ user: String) async throws -> JSONValue? {
        try await h.call(.get, "/api/v1/credits/balance", as: user).body["balance"]
    }

    @Test func aPurchaseCreatesOneCustomerAndAnIntentPerPurchase() async throws {
        let stripe = try StripeStandIn()
        try await stripe.server.start()
        try await CreditsHarness.run(stripe: { stripe.configure(&$0) }) { (h: CreditsHarness) async throws in
            let ids = try await Self.packages(h)
            let standard = try #require(ids["Standard"])
            let first = try await h.call(.post, "/api/v1/credits/purchase", as: "buyer", json: #"{"packageId": "\#(standard)"}"#)
            #expect(first.status == .ok)
            #expect(first.body["amount"] == 1_000 && first.body["credits"] == 1_050)
            #expect(first.body["clientSecret"]?.stringValue?.hasPrefix("pi_") == true)
            let purchaseID = try #require(first.body["purchaseId"]?.stringValue)
            let second = try await h.call(.post, "/api/v1/credits/purchase", as: "buyer", json: #"{"packageId": "\#(standard.uppercased())"}"#)
            #expect(second.status == .ok && second.body["purchaseId"] != first.body["purchaseId"])

            #expect(stripe.server.requests(to: "/v1/customers").count == 1)
            let intents = stripe.server.requests(to: "/v1/payment_intents")
            #expect(intents.count == 2)
            let form = StripeStandIn.parse(intents[0].body)
            #expect(form["amount"] == "1000" && form["currency"] == "eur" && form["payment_method_types[]"] == "card,sepa_debit")
            #expect(form["metadata[purchaseId]"] == purchaseID && form["metadata[userId]"] == "buyer" && form["metadata[packageId]"] == standard)
            #expect(intents[0].headers[.init("Idempotency-Key")!] == "mana-purchase-\(purchaseID)")
            #expect(intents.allSatisfy { $0.headers[.authorization] == "Bearer \(StripeStandIn.secretKey)" })

            let mine = try await h.call(.get, "/api/v1/credits/purchase/\(purchaseID)", as: "buyer")
            #expect(mine.body["status"] == "pending" && mine.body["stripePaymentIntentId"]?.stringValue?.hasPrefix("pi_") == true)
            #expect(try await h.call(.get, "/api/v1/credits/purchase/\(purchaseID)", as: "snoop").status == .notFound)
            #expect(try await h.call(.get, "/api/v1/credits/purchase/not-a-uuid", as: "buyer").status == .notFound)

            // The client can read a PaymentIntent back.
            let client = StripeClient(settings: h.configuration.stripe, secretKey: StripeStandIn.secretKey)
            let intent = try await client.retrievePaymentIntent(try #require(mine.body["stripePaymentIntentId"]?.stringValue))
            #expect(intent.amount == 1_000 && intent.currency == "eur")
        }
        await stripe.server.stop()
    }

    @Test func purchaseErrorsAreClear() async throws {
        let stripe = try StripeStandIn()
        try await stripe.server.start()
        try await CreditsHarness.run { (h: CreditsHarness) async throws in
            let ids = try await Self.packages(h)
            let unconfigured = try await h.call(.post, "/api/v1/credits/purchase", as: "b", json: #"{"packageId": "\#(ids["Starter"]!)"}"#)
            #expect(unconfigured.status == .serviceUnavailable && unconfigured.body["message"] == "payments not configured")
        }
        try await CreditsHarness.run(stripe: { stripe.configure(&$0) }) { (h: CreditsHarness) async throws in
            let ids = try await Self.packages(h)
            func buy(_ json: String) async throws -> (status: HTTPResponse.Status, body: JSONValue) {
                try await h.call(.post, "/api/v1/credits/purchase", as: "b", json: json)
            }
            #expect(try await buy(#"{"packageId": "starter"}"#).body["details"]?["field"] == "packageId")
            #expect(try await buy(#"{"packageId": 7}"#).status == .badRequest)
            #expect(try await buy(#"{}"#).status == .badRequest)
            #expect(try await buy(#"{"packageId": "\#(UUID().uuidString)"}"#).status == .notFound)
            #expect(try await buy(#"{"packageId": "\#(ids["Old"]!)"}"#).status == .notFound)
            let declined = try await buy(#"{"packageId": "\#(ids["Declined"]!)"}"#)
            #expect(declined.status == .paymentRequired && declined.body["message"]?.stringValue?.contains("declined") == true)
            await stripe.server.stop()
            let down = try await buy(#"{"packageId": "\#(ids["Starter"]!)"}"#)
            #expect(down.status == .badGateway, "\(down.body)")
            let statuses = try await h.call(.get, "/api/v1/credits/purchases", as: "b").body.array?.compactMap { $0["status"]?.stringValue }
            #expect(statuses == ["failed", "failed"])
        }
    }

    @Test func aSignedSuccessCreditsOnceHoweverOftenItArrives() async throws {
        let stripe = try StripeStandIn()
        try await stripe.server.start()
        try await CreditsHarness.run(stripe: { stripe.configure(&$0) }) { (h: CreditsHarness) async throws in
            let ids = try await Self.packages(h)
            let started = try await h.call(.post, "/api/v1/credits/purchase", as: "payer", json: #"{"packageId": "\#(ids["Plus"]!)"}"#)
            let purchaseID = try #require(started.body["purchaseId"]?.stringValue)
            let intent = try #require(try await h.call(.get, "/api/v1/credits/purchase/\(purchaseID)", as: "payer").body["stripePaymentIntentId"]?.stringValue)

            // Refused: nothing changes.
            let bad = [
                StripeStandIn.event(id: "evt_x", type: "payment_intent.succeeded", intent: intent, purchaseID: purchaseID, secrets: ["whsec_wrong"]),
                StripeStandIn.event(id: "evt_x", type: "payment_intent.succeeded", intent: intent, purchaseID: purchaseID, age: 301),
            ]
            for event in bad { #expect(try await Self.webhook(h, event).status == .badRequest) }
            let missing = try await Self.webhook(h, nil)
            #expect(missing.status == .badRequest && missing.body["message"]?.stringValue?.contains("missing") == true)
            #expect(try await Self.balance(h, "payer") == 0)

            // Several v1 signatures (a secret rotation): any one matching is enough.
            let event = StripeStandIn.event(
                id: "evt_1", type: "payment_intent.succeeded", intent: intent, purchaseID: purchaseID,
                secrets: ["whsec_old", StripeStandIn.webhookSecret])
            let applied = try await Self.webhook(h, event)
            #expect(applied.status == .ok && applied.body == ["received": true])
            #expect(try await Self.balance(h, "payer") == 2_750)
            #expect(try await h.call(.get, "/api/v1/credits/purchase/\(purchaseID)", as: "payer").body["status"] == "completed")

            // A replay, five concurrent duplicates and a second event id for the same intent: nothing more.
            #expect(try await Self.webhook(h, event).status == .ok)
            let statuses = try await withThrowingTaskGroup(of: Int.self) { group in
                for _ in 0..<5 { group.addTask { try await Self.webhook(h, event).status.code } }
                return try await group.reduce(into: [Int]()) { $0.append($1) }
            }
            #expect(statuses.allSatisfy { $0 == 200 })
            let other = StripeStandIn.event(id: "evt_2", type: "payment_intent.succeeded", intent: intent, purchaseID: purchaseID)
            #expect(try await Self.webhook(h, other).status == .ok)
            #expect(try await Self.balance(h, "payer") == 2_750)

            // A fresh purchase raced by concurrent first deliveries is credited once too.
            let racing = try await h.call(.post, "/api/v1/credits/purchase", as: "payer", json: #"{"packageId": "\#(ids["Starter"]!)"}"#)
            let racingID = try #require(racing.body["purchaseId"]?.stringValue)
            let racingIntent = try #require(
                try await h.call(.get, "/api/v1/credits/purchase/\(racingID)", as: "payer").body["stripePaymentIntentId"]?.stringValue)
            let race = StripeStandIn.event(id: "evt_race", type: "payment_intent.succeeded", intent: racingIntent, purchaseID: racingID)
            try await withThrowingTaskGroup(of: Void.self) { group in
                for _ in 0..<5 { group.addTask { _ = try await Self.webhook(h, race) } }
                try await group.waitForAll()
            }
            #expect(try await Self.balance(h, "payer") == .number(2_750 + 500))
            #expect(try await h.audit().isEmpty)
        }
        await stripe.server.stop()
    }

    @Test func aFailureThenASuccessCompletesOnce() async throws {
        let stripe = try StripeStandIn()
        try await stripe.server.start()
        try await CreditsHarness.run(stripe: { stripe.configure(&$0) }) { (h: CreditsHarness) async throws in
            let ids = try await Self.packages(h)
            let started = try await h.call(.post, "/api/v1/credits/purchase", as: "retry", json: #"{"packageId": "\#(ids["Starter"]!)"}"#)
            let purchaseID = try #require(started.body["purchaseId"]?.stringValue)
            let intent = try #require(try await h.call(.get, "/api/v1/credits/purchase/\(purchaseID)", as: "retry").body["stripePaymentIntentId"]?.stringValue)
            let failed = StripeStandIn.event(id: "evt_f", type: "payment_intent.payment_failed", intent: intent, purchaseID: purchaseID)
            #expect(try await Self.webhook(h, failed).status == .ok)
            #expect(try await h.call(.get, "/api/v1/credits/purchase/\(purchaseID)", as: "retry").body["status"] == "failed")
            let other = StripeStandIn.event(id: "evt_o", type: "customer.created", intent: "cus_1", purchaseID: "")
            #expect(try await Self.webhook(h, other).status == .ok)
            let succeeded = StripeStandIn.event(id: "evt_s", type: "payment_intent.succeeded", intent: intent, purchaseID: purchaseID)
            #expect(try await Self.webhook(h, succeeded).status == .ok)
            #expect(try await Self.webhook(h, succeeded).status == .ok)
            #expect(try await h.call(.get, "/api/v1/credits/purchase/\(purchaseID)", as: "retry").body["status"] == "completed")
            #expect(try await Self.balance(h, "retry") == 500)
            #expect(try await h.audit().isEmpty)
        }
        await stripe.server.stop()
    }
}
