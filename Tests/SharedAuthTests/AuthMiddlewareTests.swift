import Foundation
import HTTPKit
import Hummingbird
import HummingbirdTesting
import SharedAuth
import Testing
import TestSupport

/// The middleware on a real server: 401 JSON for each failure, user and app id for handlers,
/// and nothing secret in the logs.
@Suite(.timeLimit(.minutes(3))) struct AuthMiddlewareTests {
    let keys = TestKeys()

    func withApp(logs: LogCapture, _ test: @Sendable (any TestClientProtocol, JWKSServer) async throws -> Void) async throws {
        let server = try JWKSServer()
        server.serve(try keys.jwks())
        try await server.start()
        let database = try await PostgresCluster.shared.createDatabase()
        let settings = AuthSettings(
            jwksURL: server.url, verifier: .init(issuer: "https://auth.example", audience: "mana"),
            serviceKeys: ["key-one", "key-two"])
        var chassis = ServiceChassis<AppRequestContext>(
            settings: TestDatabase.settings(database: database, logLevel: .trace), envelope: .statusCodeMessage, bodyLimit: 1024,
            logger: logs.logger())
        let auth = ServiceAuth(settings: settings, logger: chassis.logger)
        chassis.addService(auth.refreshService)
        chassis.router.group("whoami").add(middleware: auth.userMiddleware()).get { _, context -> [String: String] in
            let user = try context.requireUser()
            return ["id": user.id, "role": user.role, "email": user.email ?? ""]
        }
        chassis.router.group("internal/ping").add(middleware: auth.serviceKeyMiddleware()).get { _, context in
            ["app": context.callerAppID ?? ""]
        }
        do {
            try await chassis.makeApplication(migrations: []).test(.live) { client in try await test(client, server) }
        } catch {
            await server.stop()
            throw error
        }
        await server.stop()
    }

    static func json(_ response: TestResponse) throws -> [String: JSONValue] {
        try JSONDecoder().decode([String: JSONValue].self, from: Data(buffer: response.body))
    }

    @Test func aValidTokenReachesTheHandlerWithItsUser() async throws {
        let token = try await keys.edToken(TestKeys.claims(role: "admin"))
        try await withApp(logs: LogCapture()) { client, _ in
            let response = try await client.execute(uri: "/whoami", method: .get, headers: [.authorization: "Bearer \(token)"])
            #expect(response.status == .ok)
            #expect(try Self.json(response) == ["id": "user-1", "role": "admin", "email": "a@example.com"])
        }
    }

    @Test func authFailuresAre401WithAMessageAndNoToken() async throws {
        let expired = try await keys.edToken(TestKeys.claims(exp: Date().timeIntervalSince1970 - 600))
        let tampered = try await keys.edToken().dropLast(4) + "AAAA"
        let logs = LogCapture()
        try await withApp(logs: logs) { client, _ in
            let cases: [(String?, String)] = [
                (nil, "missing Authorization header"),
                ("Basic dXNlcjpwYXNz", "not a bearer token"),
                ("Bearer \(expired)", "expired"),
                ("Bearer \(tampered)", "signature"),
            ]
            for (header, message) in cases {
                var headers: HTTPFields = [:]
                if let header { headers[.authorization] = header }
                let response = try await client.execute(uri: "/whoami", method: .get, headers: headers)
                #expect(response.status == .unauthorized)
                let body = try Self.json(response)
                #expect(body["statusCode"] == 401)
                #expect(body["message"]?.stringValue?.contains(message) == true, "\(body)")
                let text = String(buffer: response.body)
                #expect(!text.contains(expired) && !text.contains(String(tampered)))
            }
        }
        #expect(!logs.text.contains(expired))
        #expect(!logs.text.contains(String(tampered)))
        #expect(!logs.text.isEmpty)
    }

    @Test func serviceKeyMiddlewareAcceptsEachConfiguredKey() async throws {
        try await withApp(logs: LogCapture()) { client, _ in
            for key in ["key-one", "key-two"] {
                let response = try await client.execute(
                    uri: "/internal/ping", method: .get, headers: [.serviceKey: key, .appID: "mana-sync"])
                #expect(response.status == .ok)
                #expect(try Self.json(response)["app"] == "mana-sync")
            }
            let unnamed = try await client.execute(uri: "/internal/ping", method: .get, headers: [.serviceKey: "key-two"])
            #expect(try Self.json(unnamed)["app"] == "unknown")
        }
    }

    @Test func serviceKeyMiddlewareRejectsMissingEmptyAndWrongKeys() async throws {
        let logs = LogCapture()
        try await withApp(logs: logs) { client, _ in
            let cases: [HTTPFields] = [[:], [.serviceKey: ""], [.serviceKey: "key-three"], [.serviceKey: "key-one-and-more"]]
            for headers in cases {
                let response = try await client.execute(uri: "/internal/ping", method: .get, headers: headers)
                #expect(response.status == .unauthorized)
                #expect(try Self.json(response)["statusCode"] == 401)
            }
        }
        #expect(!logs.text.contains("key-one"))
        #expect(!logs.text.contains("key-three"))
    }

    @Test func serviceKeysCompareWholeKeysOnly() {
        let keys = ServiceKeys(["alpha", "beta"])
        #expect(keys.accepts("alpha"))
        #expect(keys.accepts("beta"))
        #expect(!keys.accepts("alph"))
        #expect(!keys.accepts("alphaa"))
        #expect(!keys.accepts(""))
        #expect(!ServiceKeys([""]).accepts(""))
    }
}
