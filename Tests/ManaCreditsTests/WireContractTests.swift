import Foundation
import HTTPKit
import Hummingbird
import PostgresNIO
import SharedAuth
import Testing
import TestSupport

@testable import ManaCredits

/// The original mana-credits' wire contract, replayed with its clients' request shapes: the
/// fields each answer carries, the status codes, and the texts the web app shows.
@Suite(.timeLimit(.minutes(3))) struct WireContractTests {
    // MARK: Fields of the original

    static let packageFields: Set<String> = [
        "id", "name", "description", "credits", "priceEuroCents", "stripePriceId", "active", "sortOrder", "metadata", "createdAt",
        "updatedAt",
    ]
    static let purchaseFields: Set<String> = [
        "id", "userId", "packageId", "credits", "priceEuroCents", "stripePaymentIntentId", "stripeCustomerId", "status", "metadata",
        "createdAt", "completedAt",
    ]
    static let redemptionFields: Set<String> = [
        "id", "giftCodeId", "redeemerUserId", "status", "creditsReceived", "creditTransactionId", "sourceAppId", "createdAt",
    ]

    /// The keys of a JSON object, `null` values included.
    static func keys(_ value: JSONValue?) -> Set<String> {
        Set(value?.objectValue?.keys.map { $0 } ?? [])
    }

    // MARK: Requests as the original's clients send them

    /// Sends `json` with a bearer token minted with exactly these claims (or a raw `Authorization` header).
    static func send(
        _ h: CreditsHarness, _ method: HTTPRequest.Method, _ uri: String, user: String? = nil, email: String? = nil,
        name: String? = nil, role: String = "user", authorization: String? = nil, json: String? = nil
    ) async throws -> (status: HTTPResponse.Status, body: JSONValue) {
        var headers: HTTPFields = [.contentType: "application/json"]
        if let user {
            let token = try await h.key.mint(userID: user, email: email, role: role, issuer: CreditsHarness.issuer, name: name)
            headers[.authorization] = "Bearer \(token)"
        }
        if let authorization { headers[.authorization] = authorization }
        return try await h.caller.send(method, uri, headers: headers, body: json)
    }

    static func installDefaultPackages(_ h: CreditsHarness) async throws -> [String: String] {
        try await h.withDatabase { client in
            let repository = PackageRepository(client: client, logger: TestDatabase.logger)
            for (index, package) in PackageRepository.defaults.enumerated() {
                try await repository.upsert(
                    name: package.name, description: package.description, credits: package.credits,
                    priceEuroCents: package.priceEuroCents, sortOrder: index)
            }
            return Dictionary(uniqueKeysWithValues: try await repository.list(activeOnly: false).map { ($0.name, $0.id) })
        }
    }

    // MARK: Credits

    @Test func packagesCarryTheOriginalFieldsWithPriceEuroCents() async throws {
        try await CreditsHarness.run { (h: CreditsHarness) async throws in
            _ = try await Self.installDefaultPackages(h)
            let answer = try await h.call(.get, "/api/v1/credits/packages", as: "web")
            #expect(answer.status == .ok)
            let packages = try #require(answer.body.array)
            #expect(packages.count == 4)
            for package in packages {
                #expect(Self.keys(package).isSuperset(of: Self.packageFields), "\(package)")
                #expect(package["priceCents"] == nil)
                #expect(package["stripePriceId"] == .null && package["metadata"] == .null && package["active"] == true)
                #expect(package["createdAt"]?.stringValue != nil && package["updatedAt"]?.stringValue != nil)
            }
            #expect(packages.map { $0["priceEuroCents"] } == [500, 1_000, 2_500, 5_000])
            #expect(packages.map { $0["sortOrder"] } == [0, 1, 2, 3])
            #expect(packages.first?["name"] == "Starter" && packages.first?["credits"] == 500)
        }
    }

    @Test func purchasesCarryTheOriginalFieldsBeforeAndAfterPayment() async throws {
        let stripe = try StripeStandIn()
        try await stripe.server.start()
        try await CreditsHarness.run(stripe: { stripe.configure(&$0) }) { (h: CreditsHarness) async throws in
            let ids = try await Self.installDefaultPackages(h)
            let standard = try #require(ids["Standard"])
            let started = try await h.call(.post, "/api/v1/credits/purchase", as: "buyer", json: #"{"packageId": "\#(standard)"}"#)
            #expect(started.status == .ok)
            #expect(Self.keys(started.body) == ["purchaseId", "clientSecret", "amount", "credits"])
            let purchaseID = try #require(started.body["purchaseId"]?.stringValue)

            let list = try await h.call(.get, "/api/v1/credits/purchases", as: "buyer")
            #expect(list.status == .ok)
            let listed = try #require(list.body.array?.first)
            let one = try await h.call(.get, "/api/v1/credits/purchase/\(purchaseID)", as: "buyer")
            #expect(one.status == .ok && one.body == listed)
            #expect(Self.keys(one.body).isSuperset(of: Self.purchaseFields), "\(one.body)")
            #expect(one.body["amount"] == nil)
            #expect(one.body["id"] == .string(purchaseID) && one.body["userId"] == "buyer" && one.body["packageId"] == .string(standard))
            #expect(one.body["credits"] == 1_050 && one.body["priceEuroCents"] == 1_000 && one.body["status"] == "pending")
            #expect(one.body["stripeCustomerId"]?.stringValue?.hasPrefix("cus_") == true)
            #expect(one.body["stripePaymentIntentId"]?.stringValue?.hasPrefix("pi_") == true)
            #expect(one.body["metadata"] == .null && one.body["completedAt"] == .null)

            let intent = try #require(one.body["stripePaymentIntentId"]?.stringValue)
            let event = StripeStandIn.event(id: "evt_wire", type: "payment_intent.succeeded", intent: intent, purchaseID: purchaseID)
            var headers: HTTPFields = [.contentType: "application/json"]
            headers[.init("Stripe-Signature")!] = event.signature
            let webhook = try await h.caller.send(.post, "/api/v1/webhooks/stripe", headers: headers, body: event.body)
            #expect(webhook.status == .ok && webhook.body == ["received": true])
            let completed = try await h.call(.get, "/api/v1/credits/purchase/\(purchaseID)", as: "buyer").body
            #expect(completed["status"] == "completed" && completed["completedAt"]?.stringValue != nil)

            let missing = try await h.call(.get, "/api/v1/credits/purchase/\(UUID().uuidString)", as: "buyer")
            #expect(missing.status == .notFound && missing.body == ["statusCode": 404, "message": "Purchase not found"])
            let unknownPackage = try await h.call(.post, "/api/v1/credits/purchase", as: "buyer", json: #"{"packageId": "\#(UUID())"}"#)
            #expect(unknownPackage.status == .notFound && unknownPackage.body["message"] == "Package not found or inactive")
        }
        await stripe.server.stop()
    }

    @Test func spendingKeepsTheOriginalTexts() async throws {
        try await CreditsHarness.run { (h: CreditsHarness) async throws in
            let use = #"{"amount": 10, "appId": "todo", "description": "AI"}"#
            let noBalance = try await h.call(.post, "/api/v1/credits/use", as: "newcomer", json: use)
            #expect(noBalance.status == .paymentRequired && noBalance.body["message"] == "User balance not found")
            try await h.fund("spender", 5)
            let short = try await h.call(.post, "/api/v1/credits/use", as: "spender", json: use)
            #expect(short.status == .paymentRequired)
            #expect(short.body == ["statusCode": 402, "message": "Insufficient credits", "details": ["required": 10, "available": 5]])
        }
    }

    // MARK: Cloud Sync

    @Test func changeIntervalAnswersTheNewIntervalsPriceAsAmountCharged() async throws {
        try await CreditsHarness.run { (h: CreditsHarness) async throws in
            try await h.fund("ann", 100)
            let activated = try await h.call(.post, "/api/v1/sync/activate", as: "ann", json: "{}")
            #expect(activated.status == .ok && activated.body["amountCharged"] == 30)
            for (interval, price) in [("yearly", 360), ("quarterly", 90), ("monthly", 30)] {
                let changed = try await h.call(.post, "/api/v1/sync/change-interval", as: "ann", json: #"{"interval": "\#(interval)"}"#)
                #expect(changed.status == .ok)
                #expect(Self.keys(changed.body).isSuperset(of: ["success", "interval", "amountCharged", "effectiveAt"]))
                #expect(changed.body["success"] == true && changed.body["interval"] == .string(interval))
                #expect(changed.body["amountCharged"] == .number(Double(price)) && changed.body["nextAmount"] == .number(Double(price)))
                #expect(changed.body["effectiveAt"] == activated.body["nextChargeAt"])
            }
            // Nothing was charged by the changes.
            #expect(try await h.call(.get, "/api/v1/credits/balance", as: "ann").body["balance"] == 70)
        }
    }

    @Test func subscriptionRefusalsKeepTheOriginalTexts() async throws {
        try await CreditsHarness.run { (h: CreditsHarness) async throws in
            func message(_ method: HTTPRequest.Method, _ uri: String, as user: String, role: String = "user") async throws -> JSONValue? {
                let answer = try await Self.send(h, method, uri, user: user, email: "\(user)@example.com", role: role)
                #expect(answer.status == .badRequest, "\(uri): \(answer.body)")
                return answer.body["message"]
            }
            #expect(try await message(.post, "/api/v1/sync/deactivate", as: "ann") == "Sync is not active")
            #expect(try await message(.post, "/api/v1/sync/change-interval", as: "ann") == "interval is required: monthly, quarterly or yearly")
            let change = try await Self.send(h, .post, "/api/v1/sync/change-interval", user: "ann", json: #"{"interval": "yearly"}"#)
            #expect(change.status == .badRequest && change.body["message"] == "Sync is not active")
            try await h.fund("ann", 100)
            #expect(try await h.call(.post, "/api/v1/sync/activate", as: "ann").status == .ok)
            #expect(try await message(.post, "/api/v1/sync/activate", as: "ann") == "Sync is already active")

            #expect(try await Self.send(h, .post, "/api/v1/admin/sync/gus/gift", user: "root", role: "admin").status == .ok)
            #expect(try await message(.post, "/api/v1/sync/activate", as: "gus") == "Sync is already gifted — no activation needed")
            #expect(try await message(.post, "/api/v1/sync/deactivate", as: "gus") == "Sync is gifted — contact support to revoke")
            #expect(try await Self.send(h, .delete, "/api/v1/admin/sync/gus/gift", user: "root", role: "admin").status == .ok)
            #expect(try await message(.delete, "/api/v1/admin/sync/gus/gift", as: "root", role: "admin") == "Sync is not gifted — nothing to revoke")
        }
    }

    @Test func nonAdminsGetTheOriginalsRefusal() async throws {
        try await CreditsHarness.run { (h: CreditsHarness) async throws in
            let refusal: JSONValue = ["statusCode": 403, "error": "Forbidden", "message": "Admin access required"]
            for (method, uri) in [
                (HTTPRequest.Method.get, "/api/v1/admin/sync/friend"), (.post, "/api/v1/admin/sync/friend/gift"),
                (.delete, "/api/v1/admin/sync/friend/gift"),
            ] {
                let answer = try await h.call(method, uri, as: "mallory")
                #expect(answer.status == .forbidden && answer.body == refusal, "\(method) \(uri): \(answer.body)")
            }
            #expect(try await h.call(.get, "/api/v1/sync/status", as: "friend").body["gifted"] == false)
        }
    }

    // MARK: Gifts

    @Test func creatorNameComesFromTheTokenNeverAsAWholeAddress() async throws {
        try await CreditsHarness.run { (h: CreditsHarness) async throws in
            for user in ["named", "mailed", "chosen", "anonymous"] { try await h.fund(user, 100) }
            func create(_ user: String, email: String?, name: String?, json: String = #"{"credits": 5}"#) async throws -> JSONValue {
                let created = try await Self.send(h, .post, "/api/v1/gifts", user: user, email: email, name: name, json: json)
                #expect(created.status == .created, "\(created.body)")
                let code = try #require(created.body["code"]?.stringValue)
                let lookedUp = try await h.call(.get, "/api/v1/gifts/\(code)")
                #expect(lookedUp.body["creatorName"] == created.body["creatorName"])
                return created.body["creatorName"] ?? .null
            }
            #expect(try await create("named", email: "named@example.com", name: "Nora Named") == "Nora Named")
            #expect(try await create("mailed", email: "max.mustermann@example.com", name: nil) == "max.mustermann")
            #expect(try await create("mailed", email: "max.mustermann@example.com", name: "  ") == "max.mustermann")
            #expect(try await create("chosen", email: "c@example.com", name: "C", json: #"{"credits": 5, "creatorName": "Tante C"}"#) == "Tante C")
            #expect(try await create("anonymous", email: nil, name: nil) == .null)
        }
    }

    @Test func receivedGiftsCarryTheOriginalRedemptionFields() async throws {
        try await CreditsHarness.run { (h: CreditsHarness) async throws in
            try await h.fund("alice", 100)
            let created = try await Self.send(
                h, .post, "/api/v1/gifts", user: "alice", email: "alice@example.com", json: #"{"credits": 25, "message": "Für dich"}"#)
            let code = try #require(created.body["code"]?.stringValue)
            let redeemed = try await Self.send(
                h, .post, "/api/v1/gifts/\(code.lowercased())/redeem", user: "bob", email: "bob@example.com", json: #"{"sourceAppId": "web"}"#)
            #expect(redeemed.status == .ok)
            #expect(redeemed.body == ["success": true, "creditsReceived": 25, "message": "Für dich", "creatorName": "alice"])

            let received = try await h.call(.get, "/api/v1/gifts/me/received", as: "bob")
            #expect(received.status == .ok)
            let row = try #require(received.body.array?.first)
            #expect(received.body.array?.count == 1)
            #expect(Self.keys(row) == Self.redemptionFields.union(["code", "creatorName", "message", "redeemedAt"]), "\(row)")
            #expect(row["giftCodeId"] == created.body["id"] && row["redeemerUserId"] == "bob" && row["status"] == "success")
            #expect(row["creditsReceived"] == 25 && row["sourceAppId"] == "web")
            #expect(row["code"] == .string(code) && row["creatorName"] == "alice" && row["message"] == "Für dich")
            #expect(row["redeemedAt"] == row["createdAt"] && row["createdAt"]?.stringValue != nil)
            let transactionID = try #require(row["creditTransactionId"]?.stringValue)
            let ledger = try await h.call(.get, "/api/v1/credits/transactions", as: "bob").body.array ?? []
            #expect(ledger.first?["id"] == .string(transactionID) && ledger.first?["amount"] == 25)
        }
    }

    @Test func giftRefusalsKeepTheOriginalTexts() async throws {
        try await CreditsHarness.run { (h: CreditsHarness) async throws in
            try await h.fund("alice", 30)
            let unknown = try await h.call(.get, "/api/v1/gifts/NOSUCHCODE")
            #expect(unknown.status == .notFound && unknown.body == ["statusCode": 404, "message": "Gift code not found"])
            let redeemUnknown = try await h.call(.post, "/api/v1/gifts/NOSUCHCODE/redeem", as: "bob")
            #expect(redeemUnknown.status == .notFound && redeemUnknown.body["message"] == "Gift code not found")
            let short = try await h.call(.post, "/api/v1/gifts", as: "alice", json: #"{"credits": 31}"#)
            #expect(short.status == .paymentRequired && short.body["message"] == "Insufficient credits to create gift")
            #expect(short.body["details"] == ["required": 31, "available": 30])

            let first = try await h.call(.post, "/api/v1/gifts", as: "alice", json: #"{"credits": 10}"#).body
            let code = try #require(first["code"]?.stringValue)
            #expect(try await h.call(.post, "/api/v1/gifts/\(code)/redeem", as: "bob").status == .ok)
            for user in ["bob", "carol"] {
                let again = try await h.call(.post, "/api/v1/gifts/\(code)/redeem", as: user)
                #expect(again.status == .badRequest && again.body["message"] == "Gift already claimed")
            }
            let cancelRedeemed = try await h.call(.delete, "/api/v1/gifts/\(first["id"]?.stringValue ?? "")", as: "alice")
            #expect(cancelRedeemed.status == .badRequest && cancelRedeemed.body["message"] == "Only active gifts can be cancelled")
            for id in [UUID().uuidString, "not-an-id"] {
                let cancelUnknown = try await h.call(.delete, "/api/v1/gifts/\(id)", as: "alice")
                #expect(cancelUnknown.status == .notFound && cancelUnknown.body["message"] == "Gift not found")
            }

            let second = try await h.call(.post, "/api/v1/gifts", as: "alice", json: #"{"credits": 10}"#).body
            let expiring = try #require(second["code"]?.stringValue)
            try await h.withDatabase { client in
                try await client.query(
                    "UPDATE gifts.gift_codes SET expires_at = now() - interval '1 minute' WHERE code = \(expiring)", logger: TestDatabase.logger)
            }
            let expired = try await h.call(.post, "/api/v1/gifts/\(expiring)/redeem", as: "bob")
            #expect(expired.status == .badRequest && expired.body["message"] == "Gift code expired")
            #expect(try await h.audit().isEmpty)
        }
    }

    // MARK: Authentication

    @Test func authFailuresKeepTheOriginalTexts() async throws {
        try await CreditsHarness.run { (h: CreditsHarness) async throws in
            let header: JSONValue = ["statusCode": 401, "message": "Missing or invalid Authorization header"]
            let token: JSONValue = ["statusCode": 401, "message": "Invalid or expired token"]
            let serviceKey: JSONValue = ["statusCode": 401, "message": "Invalid or missing service key"]
            let expiredToken = try await h.key.mint(
                userID: "late", issuer: CreditsHarness.issuer, lifetime: .seconds(60), now: Date().addingTimeInterval(-3_600))
            let foreignKey = try DevelopmentSigningKey(kid: "credits-test")
            let forged = try await foreignKey.mint(userID: "forger", issuer: CreditsHarness.issuer)
            let cases: [(String?, JSONValue)] = [
                (nil, header), ("Basic dXNlcjpwYXNz", header), ("Bearer", header), ("Bearer not.a.token", token),
                ("Bearer \(expiredToken)", token), ("Bearer \(forged)", token),
            ]
            for (authorization, expected) in cases {
                for uri in ["/api/v1/credits/balance", "/api/v1/sync/status", "/api/v1/gifts/me/received"] {
                    let answer = try await Self.send(h, .get, uri, authorization: authorization)
                    #expect(answer.status == .unauthorized && answer.body == expected, "\(uri) with \(authorization ?? "nothing"): \(answer.body)")
                }
            }
            for key in [nil, "wrong-key"] {
                var headers: HTTPFields = [.contentType: "application/json"]
                if let key { headers[.serviceKey] = key }
                let answer = try await h.caller.send(.get, "/api/v1/internal/credits/balance/someone", headers: headers)
                #expect(answer.status == .unauthorized && answer.body == serviceKey, "\(answer.body)")
            }
        }
    }
}
