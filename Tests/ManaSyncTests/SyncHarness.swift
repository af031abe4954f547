import Foundation
import HTTPKit
import Hummingbird
import HummingbirdTesting
import PostgresNIO
import SharedAuth
import TestSupport

@testable import ManaSync

/// mana-sync on loopback against its own database, with a JWKS stand-in.
struct SyncHarness: Sendable {
    let caller: HTTPCaller
    let database: DatabaseURL
    let key: DevelopmentSigningKey

    static func run(hooks: SyncHooks = SyncHooks(), _ test: @Sendable (SyncHarness) async throws -> Void) async throws {
        let key = try DevelopmentSigningKey(kid: "sync-test")
        let jwks = try JWKSServer()
        jwks.serve(try key.jwksDocument())
        try await jwks.start()
        let database = try await PostgresCluster.shared.createDatabase(prefix: "sync")
        let configuration = SyncConfiguration(
            chassis: TestDatabase.settings(serviceName: "mana-sync", database: database),
            auth: AuthSettings(jwksURL: jwks.url, serviceKeys: ["sync-key"]))
        do {
            try await LiveService.run(
                build: { try await buildApplication(configuration, hooks: hooks, logger: TestDatabase.logger, onServerRunning: $0) }
            ) { caller in try await test(SyncHarness(caller: caller, database: database, key: key)) }
        } catch {
            await jwks.stop()
            throw error
        }
        await jwks.stop()
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

    @discardableResult
    func withDatabase<T: Sendable>(_ body: @Sendable (PostgresClient) async throws -> T) async throws -> T {
        try await TestDatabase.withClient(database, body)
    }
}

extension JSONValue {
    subscript(key: String) -> JSONValue? { objectValue?[key] }
    var array: [JSONValue]? { if case .array(let values) = self { return values } else { return nil } }
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
