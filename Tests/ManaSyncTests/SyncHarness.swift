import Foundation
import HTTPKit
import Hummingbird
import HummingbirdTesting
import PostgresNIO
import Synchronization
import SharedAuth
import TestSupport
import Testing

@testable import ManaSync

/// mana-sync on loopback against its own database, with stand-ins for mana-auth's JWKS and
/// for mana-credits' subscription status.
struct SyncHarness: DatabaseHarness {
    let caller: HTTPCaller
    let database: DatabaseURL
    let key: DevelopmentSigningKey
    let credits: CreditsStandIn
    /// mana-auth's memberships endpoint.
    let auth: MembershipStandIn
    /// What this replica was built with (a second replica is built the same way).
    let configuration: SyncConfiguration
    static let serviceKey = "sync-key"

    static func run(
        billing: @Sendable (inout BillingSettings) -> Void = { _ in },
        realtime: @Sendable (inout RealtimeSettings) -> Void = { _ in },
        hub: RealtimeHub? = nil,
        chassis: @Sendable (inout ChassisSettings) -> Void = { _ in },
        limits: @Sendable (inout PushLimits) -> Void = { _ in },
        pages: @Sendable (inout PageLimits) -> Void = { _ in },
        compaction: @Sendable (inout CompactionSettings) -> Void = { $0.after = .zero },
        memberships: @Sendable (inout MembershipSettings) -> Void = { _ in },
        authEnvironment: [String: String] = [:],
        _ test: @Sendable (SyncHarness) async throws -> Void
    ) async throws {
        let credits = try CreditsStandIn(serviceKey: serviceKey)
        let auth = try MembershipStandIn(serviceKey: serviceKey)
        try await ServiceFixture.with(keyID: "sync-test", databasePrefix: "sync", standIns: [credits.server, auth.server]) { fixture in
            var billingSettings = BillingSettings(creditsURL: credits.server.baseURL)
            // Fail-open after 2 s would let a 402 through as a 200 on a saturated runner; the
            // tests of the timeout itself set their own.
            billingSettings.timeout = .seconds(30)
            billing(&billingSettings)
            var realtimeSettings = RealtimeSettings()
            realtime(&realtimeSettings)
            var chassisSettings = TestDatabase.settings(serviceName: "mana-sync", database: fixture.database)
            chassis(&chassisSettings)
            var configuration = SyncConfiguration(
                chassis: chassisSettings,
                auth: try authSettings(jwksURL: fixture.jwksURL, environment: authEnvironment), billing: billingSettings,
                realtime: realtimeSettings)
            limits(&configuration.push)
            pages(&configuration.pages)
            compaction(&configuration.compaction)
            configuration.memberships.authURL = auth.server.baseURL
            configuration.memberships.timeout = .seconds(30)  // a saturated runner must not turn a lookup into a 503
            memberships(&configuration.memberships)
            try await LiveService.run(
                build: { try await buildApplication(configuration, hub: hub, logger: TestDatabase.logger, onServerRunning: $0) }
            ) { caller in try await test(
                    SyncHarness(
                        caller: caller, database: fixture.database, key: fixture.key, credits: credits, auth: auth,
                        configuration: configuration)) }
        }
    }

    /// `POST /internal/memberships/invalidate` for `users`, as mana-auth sends it (204).
    func invalidateMemberships(_ users: [String]) async throws {
        let body = String(decoding: try JSONEncoder().encode(["userIds": users]), as: UTF8.self)
        let answer = try await caller.sendText(
            .post, "/internal/memberships/invalidate", headers: [.serviceKey: Self.serviceKey, .contentType: "application/json"], body: body)
        #expect(answer.status == .noContent)
    }

    /// Runs `body` with a second replica of this service: its own process state, the same
    /// database (and so the same notification channel), the same neighbours.
    func withReplica<T>(hub: RealtimeHub? = nil, _ body: (HTTPCaller) async throws -> T) async throws -> T {
        try await LiveService.run(
            build: { try await buildApplication(configuration, hub: hub, logger: TestDatabase.logger, onServerRunning: $0) }, body)
    }

    /// The token rules as a deployment without JWT settings reads them (issuer
    /// http://localhost:3001 and audience `mana` checked), with the stand-in's JWKS.
    static func authSettings(jwksURL: String, environment: [String: String] = [:]) throws -> AuthSettings {
        // A saturated 2-core CI runner can take seconds to answer even a loopback stand-in;
        // a JWKS fetch that timed out there would turn every push of a test into a 401.
        var reader = ConfigReader(
            environment: ["JWKS_URL": jwksURL, "MANA_SERVICE_KEY": serviceKey, "JWKS_FETCH_TIMEOUT": "60"].merging(environment) { $1 })
        let settings = AuthSettings(readingTokenRules: &reader)
        try reader.finish()
        return settings
    }

    /// `ws://` address of a WebSocket path.
    func ws(_ path: String) -> String { caller.baseURL.replacingOccurrences(of: "http://", with: "ws://") + path }

    func token(_ user: String) async throws -> String { try await key.mint(userID: user) }

    /// Waits until this replica listens for notifications and has told the clients here to
    /// catch up (on a loaded machine the listener connects after the first requests).
    func listening() async throws {
        try await eventually(within: .seconds(60)) {
            let metrics = (try? await self.caller.sendText(.get, "/metrics").text) ?? ""
            return metrics.contains("sync_listener_connected 1.0") || metrics.contains("sync_listener_connected 1\n")
        }
    }

    /// Sends a request as `user` and decodes the JSON answer.
    @discardableResult
    func call(
        _ method: HTTPRequest.Method, _ uri: String, as user: String?, clientID: String? = nil, headers extra: HTTPFields = [:],
        body: String? = nil
    ) async throws -> (status: HTTPResponse.Status, body: JSONValue) {
        var headers = extra
        headers[.contentType] = "application/json"
        if let user { headers[.authorization] = "Bearer \(try await key.mint(userID: user))" }
        if let clientID { headers[.clientID] = clientID }
        return try await caller.send(method, uri, headers: headers, body: body)
    }

    @discardableResult
    func push(_ app: String, as user: String, client: String, since: String? = nil, changes: [JSONValue], key: String? = nil)
        async throws -> (status: HTTPResponse.Status, body: JSONValue)
    {
        var body: [String: JSONValue] = ["clientId": .string(client), "changes": .array(changes)]
        if let since { body["since"] = .string(since) }
        var headers: HTTPFields = [:]
        if let key { headers[.idempotencyKey] = key }
        let text = String(decoding: try JSONEncoder().encode(body), as: UTF8.self)
        return try await call(.post, "/sync/\(app)", as: user, headers: headers, body: text)
    }

    func pull(_ app: String, as user: String, collection: String, since: String, client: String? = nil, limit: Int? = nil)
        async throws -> (status: HTTPResponse.Status, body: JSONValue)
    {
        let encoded = since.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? since
        var uri = "/sync/\(app)/pull?collection=\(collection)&since=\(encoded)"
        if let limit { uri += "&limit=\(limit)" }
        return try await call(.get, uri, as: user, clientID: client)
    }
}

enum Changes {
    static func insert(_ table: String, _ id: String, _ data: JSONValue) -> JSONValue {
        ["table": .string(table), "id": .string(id), "op": "insert", "data": data]
    }
    static func update(_ table: String, _ id: String, _ field: String, _ value: JSONValue, at: String = "2024-01-01T10:05:00Z") -> JSONValue {
        ["table": .string(table), "id": .string(id), "op": "update", "fields": [field: ["value": value, "updatedAt": .string(at)]]]
    }
    static func delete(_ table: String, _ id: String, at: String? = nil) -> JSONValue {
        var change: [String: JSONValue] = ["table": .string(table), "id": .string(id), "op": "delete"]
        if let at { change["deletedAt"] = .string(at) }
        return .object(change)
    }
}

/// A loopback stand-in for mana-credits' `GET /api/v1/internal/sync/status/{userId}`: every
/// user is active unless the test says otherwise; it can also hang or answer errors.
final class CreditsStandIn: Sendable {
    enum Behaviour: Sendable {
        case answer
        case hang
        case status(Int)
        case garbage
    }

    private final class State: Sendable {
        let value = Mutex<(inactive: Set<String>, behaviour: Behaviour)>(([], .answer))
    }

    let server: StandInServer
    private let state = State()
    static let statusPath = "/api/v1/internal/sync/status/"

    init(serviceKey: String) throws {
        let state = self.state
        server = try StandInServer { router in
            router.get("api/v1/internal/sync/status/:userId") { request, context -> Response in
                guard request.headers[.serviceKey] == serviceKey else {
                    return .json(#"{"statusCode":401,"message":"invalid service key"}"#, status: .unauthorized)
                }
                let user = context.parameters.get("userId") ?? ""
                let (inactive, behaviour) = state.value.withLock { ($0.inactive.contains(user), $0.behaviour) }
                switch behaviour {
                case .hang:
                    try await Task.sleep(for: .seconds(3600))
                    return .json("{}")
                case .status(let code):
                    return .json(#"{"statusCode":\#(code),"message":"stand-in failure"}"#, status: .init(code: code))
                case .garbage:
                    return .json("<html>not json</html>")
                case .answer:
                    return .json(#"{"active":\#(!inactive),"interval":"monthly","nextChargeAt":null,"pausedAt":null,"gifted":false}"#)
                }
            }
        }
    }

    /// Makes `user` active or inactive in mana-credits' eyes.
    func setActive(_ user: String, _ active: Bool) {
        state.value.withLock { if active { $0.inactive.remove(user) } else { $0.inactive.insert(user) } }
    }

    /// How the stand-in answers from now on.
    func behave(_ behaviour: Behaviour) { state.value.withLock { $0.behaviour = behaviour } }

    /// Status calls received, for one user or for everyone.
    func statusCalls(for user: String? = nil) -> Int {
        let prefix = Self.statusPath + (user ?? "")
        return server.requests.filter { user == nil ? $0.path.hasPrefix(prefix) : $0.path == prefix }.count
    }
}

/// A loopback stand-in for mana-auth's `GET /api/v1/internal/users/{userId}/memberships`
/// (service key; an unknown user gets an empty list), which can also hang.
final class MembershipStandIn: Sendable {
    private final class State: Sendable {
        let value = Mutex<(roles: [String: [String: String]], hang: Bool, failing: Bool)>(([:], false, false))
    }

    let server: StandInServer
    private let state = State()

    init(serviceKey: String) throws {
        let state = self.state
        server = try StandInServer { router in
            router.get("api/v1/internal/users/:userId/memberships") { request, context -> Response in
                guard request.headers[.serviceKey] == serviceKey else {
                    return .json(#"{"statusCode":401,"message":"Invalid or missing service key"}"#, status: .unauthorized)
                }
                let user = context.parameters.get("userId")?.removingPercentEncoding ?? ""
                let (roles, hang, failing) = state.value.withLock { ($0.roles[user] ?? [:], $0.hang, $0.failing) }
                if hang { try await Task.sleep(for: .seconds(3600)) }
                if failing { return .json(#"{"statusCode":503,"message":"down"}"#, status: .serviceUnavailable) }
                let list = roles.sorted { $0.key < $1.key }.map { #"{"organizationId":"\#($0.key)","role":"\#($0.value)"}"# }
                return .json(#"{"userId":"\#(user)","memberships":[\#(list.joined(separator: ","))]}"#)
            }
        }
    }

    func set(_ user: String, _ roles: [String: String]) { state.value.withLock { $0.roles[user] = roles } }
    func hang(_ hang: Bool) { state.value.withLock { $0.hang = hang } }
    /// Answers 503 to every lookup while `failing`.
    func fail(_ failing: Bool) { state.value.withLock { $0.failing = failing } }
}
