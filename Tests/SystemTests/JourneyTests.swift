import Foundation
import HTTPKit
import Hummingbird
import PostgresNIO
import SharedAuth
import Testing
import TestSupport

/// Both executables as processes, wired to each other, with stand-ins for mana-auth's JWKS,
/// mana-notify and Stripe: the journeys a user takes.
@Suite(.heavy, .timeLimit(.minutes(15))) struct JourneyTests {
    static let serviceKey = "journey-service-key"
    static let issuer = "http://auth.journey"

    /// The running system of one test.
    final class System: Sendable {
        let key: DevelopmentSigningKey
        let jwksURL: String
        let notify: StandInServer
        let memberships: StandInServer
        let stripe: StripeStandIn
        let creditsDatabase: DatabaseURL
        let syncDatabase: DatabaseURL
        let creditsPort: Int
        let syncPort: Int
        let credits: Shared<ChildProcess?>
        let sync: ChildProcess
        let creditsCaller: HTTPCaller
        let syncCaller: HTTPCaller

        /// Both services on `cluster`; `environment` is added to both processes'.
        let environment: [String: String]

        init(cluster: PostgresCluster = .shared, environment: [String: String] = [:]) async throws {
            self.environment = environment
            key = try DevelopmentSigningKey(kid: "journey")
            let path = FileManager.default.temporaryDirectory.appendingPathComponent("jwks-\(UUID().uuidString).json").path
            try key.jwksDocument().write(to: URL(fileURLWithPath: path))
            jwksURL = "file://\(path)"
            notify = try StandInServer { router in
                router.post("api/v1/notifications/send") { _, _ -> Response in .json(#"{"success":true}"#) }
            }
            try await notify.start()
            memberships = try StandInServer { $0.addNoMemberships() }
            try await memberships.start()
            stripe = try StripeStandIn()
            try await stripe.server.start()
            creditsDatabase = try await cluster.createDatabase(prefix: "journey_credits")
            syncDatabase = try await cluster.createDatabase(prefix: "journey_sync")
            creditsPort = try FreePort.find()
            syncPort = try FreePort.find()
            credits = Shared(nil)
            sync = try ChildProcess(
                "mana-sync", ["serve"],
                environment: [
                    "PORT": String(syncPort), "HOST": "127.0.0.1", "LOG_LEVEL": "warning", "JWKS_URL": jwksURL,
                    "MANA_AUTH_URL": JourneyTests.issuer, "DATABASE_URL": Self.url(syncDatabase), "MANA_SERVICE_KEY": JourneyTests.serviceKey,
                    "MANA_CREDITS_URL": "http://127.0.0.1:\(creditsPort)", "SYNC_BILLING_BREAKER_COOLDOWN": "1",
                    "MEMBERSHIPS_URL": memberships.baseURL,
                ].merging(environment) { _, new in new })
            creditsCaller = HTTPCaller(port: creditsPort)
            syncCaller = HTTPCaller(port: syncPort)
            try await startCredits()
            #expect(await sync.waitUntilReady(port: syncPort), "mana-sync never became ready")
            let install = try ChildProcess(
                "mana-credits", ["packages", "install-defaults"], environment: ["DATABASE_URL": Self.url(creditsDatabase)])
            #expect(try await install.waitForExit(timeout: .seconds(30)) == 0, "\(install.output)")
        }

        static func url(_ database: DatabaseURL) -> String {
            "postgresql://mana@127.0.0.1:\(database.port)/\(database.database)?sslmode=disable"
        }

        func startCredits() async throws {
            let process = try ChildProcess(
                "mana-credits", ["serve"],
                environment: [
                    "PORT": String(creditsPort), "HOST": "127.0.0.1", "LOG_LEVEL": "warning", "JWKS_URL": jwksURL,
                    "MANA_AUTH_URL": JourneyTests.issuer, "DATABASE_URL": Self.url(creditsDatabase),
                    "MANA_SERVICE_KEY": JourneyTests.serviceKey, "MANA_SYNC_URL": "http://127.0.0.1:\(syncPort)",
                    "MANA_NOTIFY_URL": notify.baseURL, "STRIPE_SECRET_KEY": StripeStandIn.secretKey,
                    "STRIPE_WEBHOOK_SECRET": StripeStandIn.webhookSecret, "STRIPE_API_BASE": stripe.server.baseURL,
                    "SYNC_CHARGE_INTERVAL": "0", "GIFT_EXPIRY_INTERVAL": "0", "OUTBOX_POLL_INTERVAL": "0.2",
                    "OUTBOX_RETRY_BASE": "0.2",
                ].merging(environment) { _, new in new })
            credits.withLock { $0 = process }
            #expect(await process.waitUntilReady(port: creditsPort), "mana-credits never became ready")
        }

        func killCredits() async throws {
            guard let process = credits.withLock({ $0 }) else { return }
            process.signal(SIGKILL)
            _ = try await process.waitForExit(timeout: .seconds(10))
            credits.withLock { $0 = nil }
        }

        func stop() async throws {
            for process in [credits.withLock { $0 }, sync].compactMap({ $0 }) {
                process.signal(SIGTERM)
                #expect(try await process.waitForExit(timeout: .seconds(15)) == 0, "\(process.output)")
            }
            await creditsCaller.shutdown()
            await syncCaller.shutdown()
            await notify.stop()
            await memberships.stop()
            await stripe.server.stop()
        }

        func token(_ user: String, role: String = "user") async throws -> String {
            try await key.mint(userID: user, email: "\(user)@example.com", role: role, issuer: JourneyTests.issuer)
        }

        func credits(
            _ method: HTTPRequest.Method, _ uri: String, as user: String? = nil, role: String = "user", service: Bool = false, json: String? = nil
        ) async throws -> (status: HTTPResponse.Status, body: JSONValue) {
            var headers: HTTPFields = [.contentType: "application/json"]
            if let user { headers[.authorization] = "Bearer \(try await token(user, role: role))" }
            if service { headers[.init("X-Service-Key")!] = JourneyTests.serviceKey }
            return try await creditsCaller.send(method, uri, headers: headers, body: json)
        }

        func push(_ user: String, client: String = "A", id: String = UUID().uuidString) async throws -> (status: HTTPResponse.Status, body: JSONValue) {
            let body = #"{"clientId": "\#(client)", "changes": [{"table": "notes", "id": "\#(id)", "op": "insert", "data": {"text": "hi"}}]}"#
            return try await syncCaller.send(
                .post, "/sync/notes", headers: [.authorization: "Bearer \(try await token(user))", .contentType: "application/json"], body: body)
        }

        func pull(_ user: String) async throws -> (status: HTTPResponse.Status, body: JSONValue) {
            try await syncCaller.send(
                .get, "/sync/notes/pull?collection=notes&since=1970-01-01T00:00:00Z", headers: [.authorization: "Bearer \(try await token(user))"])
        }

        func fund(_ user: String, _ amount: Int) async throws {
            let json = #"{"userId": "\#(user)", "amount": \#(amount), "description": "journey funding", "idempotencyKey": "\#(UUID())"}"#
            #expect(try await credits(.post, "/api/v1/internal/credits/refund", service: true, json: json).status == .ok)
        }

        func creditsSQL(_ sql: String) async throws {
            _ = try await TestDatabase.withClient(creditsDatabase) { client in
                try await client.query(PostgresQuery(unsafeSQL: sql), logger: TestDatabase.logger)
            }
        }
    }

    @Test func aNewUserPaysActivatesAndSyncsAtOnce() async throws {
        let system = try await System()
        #expect(try await system.push("newbie").status == .paymentRequired)

        // Top up through Stripe: purchase, then the signed webhook.
        let packages = try await system.credits(.get, "/api/v1/credits/packages", as: "newbie").body.array ?? []
        let starter = try #require(packages.first { $0["name"] == "Starter" }?["id"]?.stringValue)
        let purchase = try await system.credits(.post, "/api/v1/credits/purchase", as: "newbie", json: #"{"packageId": "\#(starter)"}"#)
        let purchaseID = try #require(purchase.body["purchaseId"]?.stringValue)
        let intent = try #require(
            try await system.credits(.get, "/api/v1/credits/purchase/\(purchaseID)", as: "newbie").body["stripePaymentIntentId"]?.stringValue)
        let event = StripeStandIn.event(id: "evt_journey", type: "payment_intent.succeeded", intent: intent, purchaseID: purchaseID)
        let webhook = try await system.creditsCaller.send(
            .post, "/api/v1/webhooks/stripe", headers: [.init("Stripe-Signature")!: event.signature, .contentType: "application/json"],
            body: event.body)
        #expect(webhook.status == .ok)
        #expect(try await system.credits(.get, "/api/v1/credits/balance", as: "newbie").body["balance"] == 500)

        // A second device listens; the first activates and pushes straight away.
        let device = try await WSProbe.authenticated("ws://127.0.0.1:\(system.syncPort)/ws", token: try await system.token("newbie"), clientID: "B")
        #expect(try await system.credits(.post, "/api/v1/sync/activate", as: "newbie").status == .ok)
        // The 402 above is cached for 30 s; only the invalidation lets this through now.
        #expect(try await system.push("newbie", client: "A", id: "n1").status == .ok)
        #expect(try await system.pull("newbie").body["serverChanges"]?.array?.count == 1)
        #expect(await device.waitFor { $0["type"] == "sync-available" } == ["type": "sync-available", "appId": "notes", "tables": ["notes"]])
        #expect(try await system.credits(.get, "/api/v1/credits/balance", as: "newbie").body["balance"] == 470)
        await device.close()
        try await system.stop()
    }

    @Test func aShortRenewalPausesEmailsAndAGiftRestoresSync() async throws {
        let system = try await System()
        try await system.fund("lapsing", 30)
        #expect(try await system.credits(.post, "/api/v1/sync/activate", as: "lapsing").status == .ok)
        #expect(try await system.push("lapsing").status == .ok)

        try await system.creditsSQL("UPDATE credits.sync_subscriptions SET next_charge_at = now() - interval '1 minute'")
        let run = try await system.credits(.post, "/api/v1/internal/sync/charge-recurring", service: true)
        #expect(run.body == ["charged": 0, "paused": 1, "errors": 0, "total": 1])
        try await eventually { system.notify.requests(to: "/api/v1/notifications/send").count == 1 }
        let email = try JSONDecoder().decode(JSONValue.self, from: Data(try #require(system.notify.requests.first).body.utf8))
        #expect(email["subject"] == "Cloud Sync pausiert" && email["userId"] == "lapsing")
        // The cached "active" was dropped by the pause's invalidation.
        try await eventually(within: .seconds(30)) { (try? await system.push("lapsing").status) == .paymentRequired }

        try await system.fund("friend", 100)
        let gift = try await system.credits(.post, "/api/v1/gifts", as: "friend", json: #"{"credits": 60}"#)
        let code = try #require(gift.body["code"]?.stringValue)
        #expect(try await system.credits(.post, "/api/v1/gifts/\(code)/redeem", as: "lapsing").body["creditsReceived"] == 60)
        #expect(try await system.credits(.post, "/api/v1/sync/activate", as: "lapsing").status == .ok)
        #expect(try await system.push("lapsing").status == .ok)
        try await system.stop()
    }

    @Test func syncKeepsWorkingWhileManaCreditsIsDownAndTheGateResumes() async throws {
        let system = try await System()
        try await system.killCredits()
        let clock = ContinuousClock()
        var latencies: [Duration] = []
        for user in 0..<8 {
            let start = clock.now
            #expect(try await system.push("user-\(user)").status == .ok)  // nobody has a subscription: fail-open
            latencies.append(clock.now - start)
        }
        let median = latencies.sorted()[latencies.count / 2]
        print("push latency with mana-credits down: median \(median)")
        #expect(median < .seconds(1))

        try await system.startCredits()
        // The breaker (cool-down 1 s here) probes again and the gate answers for real.
        try await eventually(within: .seconds(15)) { (try? await system.push("fresh-user").status) == .paymentRequired }
        try await system.stop()
    }

    @Test func anAdminGiftIsNeverChargedAndItsRevocationBringsBack402() async throws {
        let system = try await System()
        #expect(try await system.push("giftee").status == .paymentRequired)
        #expect(try await system.credits(.post, "/api/v1/admin/sync/giftee/gift", as: "root", role: "admin").body["gifted"] == true)
        #expect(try await system.push("giftee").status == .ok)

        try await system.creditsSQL("UPDATE credits.sync_subscriptions SET next_charge_at = now() - interval '1 day' WHERE user_id = 'giftee'")
        #expect(try await system.credits(.post, "/api/v1/internal/sync/charge-recurring", service: true).body["total"] == 0)
        #expect(try await system.credits(.get, "/api/v1/credits/balance", as: "giftee").body["balance"] == 0)

        #expect(try await system.credits(.delete, "/api/v1/admin/sync/giftee/gift", as: "root", role: "admin").status == .ok)
        #expect(try await system.push("giftee").status == .paymentRequired)
        try await system.stop()
    }
}
