import HTTPKit
import PostgresNIO
import SharedAuth

/// What every in-process service test starts before its service: a signing key served by a
/// JWKS stand-in (mana-auth), the test's other stand-ins, and a fresh database; all stopped
/// afterwards, whatever the test did. `SyncHarness` and `CreditsHarness` are this plus their
/// service's configuration and stand-ins.
///
/// ```swift
/// try await ServiceFixture.with(keyID: "sync-test", databasePrefix: "sync", standIns: [credits.server]) { fixture in
///     try await LiveService.run(build: { … fixture.jwksURL … fixture.database … }) { caller in … }
/// }
/// ```
package struct ServiceFixture: Sendable {
    package let key: DevelopmentSigningKey
    package let jwksURL: String
    package let database: DatabaseURL

    package static func with<T>(
        keyID: String, databasePrefix: String, standIns: [StandInServer] = [], _ body: (ServiceFixture) async throws -> T
    ) async throws -> T {
        let key = try DevelopmentSigningKey(kid: keyID)
        let jwks = try JWKSServer()
        jwks.serve(try key.jwksDocument())
        try await jwks.start()
        var started: [StandInServer] = []
        let outcome: Result<T, any Error>
        do {
            for server in standIns {
                try await server.start()
                started.append(server)
            }
            let database = try await PostgresCluster.shared.createDatabase(prefix: databasePrefix)
            outcome = .success(try await body(ServiceFixture(key: key, jwksURL: jwks.url, database: database)))
        } catch {
            outcome = .failure(error)
        }
        for server in started.reversed() { await server.stop() }
        await jwks.stop()
        return try outcome.get()
    }
}

/// A harness around one service under test: its database, for checks beside the API.
package protocol DatabaseHarness: Sendable {
    var database: DatabaseURL { get }
}

extension DatabaseHarness {
    /// Runs `body` with a client on the service's database.
    @discardableResult
    package func withDatabase<T: Sendable>(_ body: @Sendable (PostgresClient) async throws -> T) async throws -> T {
        try await TestDatabase.withClient(database, body)
    }
}
