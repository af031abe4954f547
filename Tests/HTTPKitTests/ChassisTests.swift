import Foundation
import HTTPKit
import Hummingbird
import HummingbirdTesting
import NIOPosix
import Synchronization
import Testing
import TestSupport

/// The chassis, served for real on loopback against the test cluster.
@Suite(.timeLimit(.minutes(3))) struct ChassisTests {
    struct Item: Decodable {
        let name: String
        let amount: Int
        let tags: [String]?
    }

    /// An application with a few routes that exercise the chassis.
    static func withApp(
        envelope: ErrorEnvelope = .statusCodeMessage,
        corsOrigins: [String] = [],
        database: DatabaseURL? = nil,
        _ test: @Sendable (any TestClientProtocol) async throws -> Void
    ) async throws {
        var url = database
        if url == nil { url = try await PostgresCluster.shared.createDatabase() }
        let database = url!
        let chassis = ServiceChassis<ChassisTestContext>(
            settings: TestDatabase.settings(database: database, corsOrigins: corsOrigins), envelope: envelope,
            bodyLimit: 1024, logger: TestDatabase.logger)
        chassis.router.post("items") { request, context -> [String: String] in
            let item = try await request.decode(as: Item.self, context: context)
            return ["name": item.name]
        }
        chassis.router.get("items") { _, _ in "list" }
        chassis.router.get("where") { [database = chassis.database] _, _ -> String in
            let before = MultiThreadedEventLoopGroup.currentEventLoop
            try await Task.sleep(for: .milliseconds(2))
            let after = MultiThreadedEventLoopGroup.currentEventLoop
            // The tasks a guarded connection starts for the request prefer its loop too.
            let body = try await database.withGuardedConnection { _ in
                MultiThreadedEventLoopGroup.currentEventLoop.map { ObjectIdentifier($0) }
            }
            return "\(before != nil) \(before.map { $0 === after } ?? false) \(before.map { ObjectIdentifier($0) == body } ?? false)"
        }
        chassis.router.get("pay") { _, _ -> String in
            throw APIError(.paymentRequired, message: "insufficient credits", details: ["required": 5, "available": 2])
        }
        chassis.router.get("boom") { _, _ -> String in
            struct Secret: Error { let password = "hunter2" }
            throw Secret()
        }
        try await chassis.makeApplication(migrations: []).test(.live, test)
    }

    static func json(_ response: TestResponse) throws -> [String: JSONValue] {
        try JSONDecoder().decode([String: JSONValue].self, from: Data(buffer: response.body))
    }

    @Test func errorsUseTheStatusCodeEnvelope() async throws {
        try await Self.withApp { client in
            let response = try await client.execute(uri: "/pay", method: .get)
            #expect(response.status == .paymentRequired)
            #expect(response.headers[.contentType]?.hasPrefix("application/json") == true)
            let body = try Self.json(response)
            #expect(body["statusCode"] == 402)
            #expect(body["message"] == "insufficient credits")
            #expect(body["details"] == ["required": 5, "available": 2])
            #expect(body["error"] == nil)
        }
    }

    @Test func errorsUseTheErrorCodeEnvelope() async throws {
        try await Self.withApp(envelope: .errorMessage) { client in
            let body = try Self.json(try await client.execute(uri: "/nowhere", method: .get))
            #expect(body["error"] == "not_found")
            #expect(body["message"] == "no such route")
            #expect(body["statusCode"] == nil)
        }
    }

    @Test func unknownRouteIsJSON404() async throws {
        try await Self.withApp { client in
            let response = try await client.execute(uri: "/does/not/exist", method: .get)
            #expect(response.status == .notFound)
            #expect(try Self.json(response)["statusCode"] == 404)
        }
    }

    @Test func wrongMethodIsJSON405WithAllow() async throws {
        try await Self.withApp { client in
            let response = try await client.execute(uri: "/items", method: .delete)
            #expect(response.status == .methodNotAllowed)
            #expect(response.headers[.allow] == "GET, HEAD, POST")
            #expect(try Self.json(response)["statusCode"] == 405)
        }
    }

    @Test func bodyOverTheLimitIs413() async throws {
        try await Self.withApp { client in
            let big = ByteBuffer(string: "{\"name\": \"" + String(repeating: "x", count: 2000) + "\", \"amount\": 1}")
            let response = try await client.execute(uri: "/items", method: .post, body: big)
            #expect(response.status == .contentTooLarge)
            #expect(try Self.json(response)["statusCode"] == 413)
        }
    }

    @Test(arguments: [
        ("{\"name\": \"a\"}", "amount"),
        ("{\"name\": \"a\", \"amount\": \"5\"}", "amount"),
        ("{\"name\": 7, \"amount\": 5}", "name"),
        ("{\"name\": \"a\", \"amount\": 5, \"tags\": [1]}", "tags[0]"),
        ("{\"name\": null, \"amount\": 5}", "name"),
    ])
    func badFieldsAre400NamingTheField(body: String, field: String) async throws {
        try await Self.withApp { client in
            let response = try await client.execute(uri: "/items", method: .post, body: ByteBuffer(string: body))
            #expect(response.status == .badRequest)
            let json = try Self.json(response)
            #expect(json["details"]?.objectValue?["field"] == .string(field))
            #expect(json["message"]?.stringValue?.contains(field) == true)
        }
    }

    @Test func malformedJSONIs400() async throws {
        try await Self.withApp { client in
            for body in ["{not json", "", "[1,2]"] {
                let response = try await client.execute(uri: "/items", method: .post, body: ByteBuffer(string: body))
                #expect(response.status == .badRequest, "body \(body)")
            }
        }
    }

    @Test func validBodyIsDecoded() async throws {
        try await Self.withApp { client in
            let response = try await client.execute(
                uri: "/items", method: .post, body: ByteBuffer(string: "{\"name\": \"milk\", \"amount\": 2}"))
            #expect(response.status == .ok)
            #expect(try Self.json(response)["name"] == "milk")
        }
    }

    /// A request's handler runs on its connection's event loop (ConnectionOnItsEventLoop), and
    /// comes back to that same loop after awaiting something that completes elsewhere; the
    /// body of a guarded database connection it asks for runs on that loop too.
    @Test func handlersRunOnTheirConnectionsEventLoop() async throws {
        try await Self.withApp { client in
            let response = try await client.execute(uri: "/where", method: .get)
            #expect(String(buffer: response.body) == "true true true")
        }
    }

    @Test func unexpectedErrorsAre500WithoutTheirCause() async throws {
        try await Self.withApp { client in
            let response = try await client.execute(uri: "/boom", method: .get)
            #expect(response.status == .internalServerError)
            let text = String(buffer: response.body)
            #expect(!text.contains("hunter2"))
            #expect(try Self.json(response)["message"] == "internal server error")
        }
    }

    @Test func corsAllowsOnlyListedOrigins() async throws {
        try await Self.withApp(corsOrigins: ["https://app.example"]) { client in
            let allowed = try await client.execute(uri: "/items", method: .get, headers: [.origin: "https://app.example"])
            #expect(allowed.headers[.accessControlAllowOrigin] == "https://app.example")
            let refused = try await client.execute(uri: "/items", method: .get, headers: [.origin: "https://evil.example"])
            #expect(refused.headers[.accessControlAllowOrigin] == nil)
            let preflight = try await client.execute(
                uri: "/items", method: .options,
                headers: [.origin: "https://app.example", .accessControlRequestMethod: "POST"])
            #expect(preflight.status == .noContent)
            #expect(preflight.headers[.accessControlAllowMethods]?.contains("POST") == true)
        }
    }

    /// The production configuration lists `https://*.mana.how`: one wildcard label.
    @Test func corsWildcardEntriesMatchSubdomainsOfThatSchemeAndHostOnly() async throws {
        try await Self.withApp(corsOrigins: ["https://*.mana.how", "https://exact.example"]) { client in
            for origin in ["https://arcade.mana.how", "https://a.b.mana.how", "https://exact.example"] {
                let allowed = try await client.execute(uri: "/items", method: .get, headers: [.origin: origin])
                #expect(allowed.headers[.accessControlAllowOrigin] == origin, "\(origin)")
            }
            for origin in ["https://mana.how.evil.com", "http://arcade.mana.how", "https://mana.how", "https://evilmana.how", "https://arcade.mana.how:8443"] {
                let refused = try await client.execute(uri: "/items", method: .get, headers: [.origin: origin])
                #expect(refused.headers[.accessControlAllowOrigin] == nil, "\(origin)")
            }
            let preflight = try await client.execute(
                uri: "/items", method: .options, headers: [.origin: "https://arcade.mana.how", .accessControlRequestMethod: "POST"])
            #expect(preflight.status == .noContent && preflight.headers[.accessControlAllowOrigin] == "https://arcade.mana.how")
        }
    }

    @Test func requestIDIsEchoedOrGenerated() async throws {
        try await Self.withApp { client in
            let echoed = try await client.execute(uri: "/items", method: .get, headers: [.requestID: "abc-123"])
            #expect(echoed.headers[.requestID] == "abc-123")
            let generated = try await client.execute(uri: "/items", method: .get)
            #expect(generated.headers[.requestID]?.isEmpty == false)
            let unsafe = try await client.execute(uri: "/items", method: .get, headers: [.requestID: "bad id\twith spaces"])
            #expect(unsafe.headers[.requestID] != "bad id\twith spaces")
            #expect(unsafe.headers[.requestID]?.isEmpty == false)
        }
    }

    @Test func metricsCountRequestsPerRouteAndStatus() async throws {
        try await Self.withApp { client in
            _ = try await client.execute(uri: "/items", method: .get)
            _ = try await client.execute(uri: "/items", method: .get)
            _ = try await client.execute(uri: "/pay", method: .get)
            let response = try await client.execute(uri: "/metrics", method: .get)
            #expect(response.status == .ok)
            let text = String(buffer: response.body)
            #expect(text.contains(#"http_requests_total{method="GET",route="/items",status="200"} 2"#))
            #expect(text.contains(#"http_requests_total{method="GET",route="/pay",status="402"} 1"#))
            #expect(text.contains("http_request_duration_seconds_bucket"))
        }
    }

    @Test func healthAndReadyAnswerWithTheDatabaseUp() async throws {
        try await Self.withApp { client in
            let health = try await client.execute(uri: "/health", method: .get)
            #expect(health.status == .ok)
            #expect(try Self.json(health)["status"] == "ok")
            #expect(try Self.json(health)["service"] == "test-service")
            let ready = try await client.execute(uri: "/ready", method: .get)
            #expect(ready.status == .ok)
        }
    }

    /// Large bodies take turns (LARGE_REQUEST_CONCURRENCY, 2 by default); small ones never wait.
    @Test func requestsWithLargeBodiesAreServedTwoAtATime() async throws {
        let database = try await PostgresCluster.shared.createDatabase()
        let chassis = ServiceChassis<ChassisTestContext>(
            settings: TestDatabase.settings(database: database), envelope: .statusCodeMessage, bodyLimit: 4 << 20,
            logger: TestDatabase.logger)
        let running = Mutex((now: 0, most: 0))
        chassis.router.group().add(middleware: chassis.largeRequests).post("upload") { request, context -> String in
            running.withLock { $0.now += 1; $0.most = max($0.most, $0.now) }
            defer { running.withLock { $0.now -= 1 } }
            try await Task.sleep(for: .milliseconds(200))
            return String(try await context.bodyDecoder.collect(request).readableBytes)
        }
        // Real parallel connections (the testing client sends one request at a time).
        try await LiveService.run(build: { chassis.makeApplication(migrations: [], onServerRunning: $0) }) { caller in
            func upload(_ size: Int) async throws {
                try await withThrowingTaskGroup(of: HTTPResponse.Status.self) { group in
                    for _ in 0..<6 {
                        group.addTask { try await caller.sendText(.post, "/upload", body: String(repeating: "x", count: size)).status }
                    }
                    for try await status in group { #expect(status == .ok) }
                }
            }
            try await upload(ChassisSettings.largeRequestBytes + 1)
            #expect(running.withLock { $0.most } == 2)
            running.withLock { $0.most = 0 }
            try await upload(1_000)
            #expect(running.withLock { $0.most } > 2, "small requests waited for each other")
        }
    }

    @Test func readyIs503AndHealthStays200WithoutTheDatabase() async throws {
        // Migrations would fail against a dead database, so build the chassis without them.
        let chassis = ServiceChassis<ChassisTestContext>(
            settings: TestDatabase.settings(database: try TestDatabase.unreachable()), envelope: .statusCodeMessage,
            bodyLimit: 1024, logger: TestDatabase.logger)
        let app = Application(
            router: chassis.router, configuration: .init(address: .hostname("127.0.0.1", port: 0)),
            services: [chassis.database], logger: TestDatabase.logger)
        try await app.test(.live) { client in
            let ready = try await client.execute(uri: "/ready", method: .get)
            #expect(ready.status == .serviceUnavailable)
            let health = try await client.execute(uri: "/health", method: .get)
            #expect(health.status == .ok)
        }
    }
}

/// The least context the chassis serves: the body rules and nothing else.
struct ChassisTestContext: BodyDecodingRequestContext {
    var coreContext: CoreRequestContextStorage
    var bodyDecoder = BodyDecoder(limit: 1 << 20)

    init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
    }
}
