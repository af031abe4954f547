import Foundation
import HTTPKit
import Hummingbird
import HummingbirdTesting
import PostgresNIO
import SharedAuth
import TestSupport

@testable import ManaCredits

/// mana-credits on loopback against its own database, with a JWKS stand-in and a key to
/// mint tokens.
struct CreditsHarness: DatabaseHarness {
    let caller: HTTPCaller
    let database: DatabaseURL
    let key: DevelopmentSigningKey
    /// Stand-in for mana-sync's `POST /internal/billing/invalidate/{userId}`.
    let sync: StandInServer
    /// Stand-in for mana-notify's `POST /api/v1/notifications/send`.
    let notify: StandInServer
    let configuration: CreditsConfiguration
    static let serviceKey = "test-service-key"
    /// The key part of the named entry `billing-bot:named-service-key`.
    static let namedServiceKey = "named-service-key"
    static let issuer = "http://auth.test"

    static func run(
        subscriptions adjust: @Sendable (inout SubscriptionSettings) -> Void = { _ in },
        gifts adjustGifts: @Sendable (inout GiftSettings) -> Void = { _ in },
        stripe adjustStripe: @Sendable (inout StripeSettings) -> Void = { _ in },
        ledger adjustLedger: @Sendable (inout LedgerSettings) -> Void = { _ in },
        _ test: @Sendable (CreditsHarness) async throws -> Void
    ) async throws {
        let sync = try StandInServer { router in
            router.post("internal/billing/invalidate/:userId") { request, _ -> Response in
                request.headers[.serviceKey] == serviceKey
                    ? .json(#"{"invalidated":true}"#) : .json(#"{"error":"unauthorized"}"#, status: .unauthorized)
            }
        }
        let notify = try StandInServer { router in
            router.post("api/v1/notifications/send") { request, _ -> Response in
                request.headers[.serviceKey] == serviceKey
                    ? .json(#"{"success":true}"#) : .json(#"{"statusCode":401}"#, status: .unauthorized)
            }
        }
        try await ServiceFixture.with(keyID: "credits-test", databasePrefix: "credits", standIns: [sync, notify]) { fixture in
            var settings = SubscriptionSettings()
            settings.syncURL = sync.baseURL
            settings.syncTimeout = .seconds(30)
            settings.notifyURL = notify.baseURL
            settings.chargeInterval = nil
            settings.outboxPollInterval = .milliseconds(100)
            settings.outboxRetryBase = .milliseconds(100)
            settings.outboxRetryMax = .milliseconds(400)
            adjust(&settings)
            var giftSettings = GiftSettings()
            giftSettings.baseURL = "https://gifts.test"
            giftSettings.expiryInterval = nil
            adjustGifts(&giftSettings)
            var stripeSettings = StripeSettings()
            adjustStripe(&stripeSettings)
            var ledgerSettings = LedgerSettings()
            adjustLedger(&ledgerSettings)
            let configuration = CreditsConfiguration(
                chassis: TestDatabase.settings(serviceName: "mana-credits", database: fixture.database),
                auth: AuthSettings(
                    jwksURL: fixture.jwksURL, verifier: .init(issuer: issuer, audience: "mana"), fetchTimeout: .seconds(60),
                    serviceKeys: [serviceKey, "old-key", "billing-bot:\(namedServiceKey)"]),
                subscriptions: settings, gifts: giftSettings, stripe: stripeSettings, ledger: ledgerSettings)
            try await LiveService.run(build: { try await buildApplication(configuration, logger: TestDatabase.logger, onServerRunning: $0) }) {
                caller in
                try await test(
                    CreditsHarness(
                        caller: caller, database: fixture.database, key: fixture.key, sync: sync, notify: notify,
                        configuration: configuration))
            }
        }
    }

    /// Sends a request with a bearer token for `user` with `email` and decodes the JSON answer.
    func call(
        _ method: HTTPRequest.Method, _ uri: String, as user: String, email: String, json: String? = nil
    ) async throws -> (status: HTTPResponse.Status, body: JSONValue) {
        let headers: HTTPFields = [.contentType: "application/json", .authorization: "Bearer \(try await token(user, email: email))"]
        return try await caller.send(method, uri, headers: headers, body: json)
    }

    func token(_ user: String, role: String = "user", email: String? = nil) async throws -> String {
        try await key.mint(userID: user, email: email ?? "\(user)@example.com", role: role, issuer: Self.issuer)
    }

    /// Sends a request as `user` (bearer token) or as a service (service key) and decodes the JSON answer.
    @discardableResult
    func call(
        _ method: HTTPRequest.Method, _ uri: String, as user: String? = nil, service: Bool = false, json: String? = nil
    ) async throws -> (status: HTTPResponse.Status, body: JSONValue) {
        var headers: HTTPFields = [.contentType: "application/json"]
        if let user { headers[.authorization] = "Bearer \(try await token(user))" }
        if service { headers[.serviceKey] = Self.serviceKey }
        return try await caller.send(method, uri, headers: headers, body: json)
    }

    /// The ledger audit's violations.
    func audit() async throws -> [String] {
        try await withDatabase { try await LedgerAudit(client: $0, logger: TestDatabase.logger).run() }
    }

    /// Grants `amount` credits through the internal refund route.
    func fund(_ user: String, _ amount: Int) async throws {
        let result = try await call(.post, "/api/v1/internal/credits/refund", service: true,
                                    json: #"{"userId": "\#(user)", "amount": \#(amount), "description": "test funding", "idempotencyKey": "\#(UUID())"}"#)
        precondition(result.status == .ok, "funding failed: \(result.body)")
    }
}

extension JSONValue {
    var int: Int? { if case .number(let value) = self { return Int(value) } else { return nil } }
}
