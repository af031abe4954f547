import HTTPKit
import Logging
import PostgresNIO

/// Helpers for tests that need a database of their own.
package enum TestDatabase {
    /// A logger for tests: warnings and worse, so failures stay readable.
    package static var logger: Logger {
        var logger = Logger(label: "test")
        logger.logLevel = .warning
        return logger
    }

    /// Chassis settings for a service under test: loopback, a free port, the given database.
    package static func settings(
        serviceName: String = "test-service", database: DatabaseURL, corsOrigins: [String] = [], logLevel: Logger.Level = .warning
    ) -> ChassisSettings {
        ChassisSettings(
            serviceName: serviceName, host: "127.0.0.1", port: 0, corsOrigins: corsOrigins,
            logLevel: logLevel, database: database, databasePoolSize: 8)
    }

    /// A database URL that nothing listens on, for tests of an unreachable database.
    package static func unreachable() throws -> DatabaseURL {
        try DatabaseURL("postgresql://mana@127.0.0.1:1/nothing?sslmode=disable")
    }

    /// Runs `body` with a running `PostgresClient` connected to `url`.
    package static func withClient<T: Sendable>(
        _ url: DatabaseURL, _ body: @Sendable (PostgresClient) async throws -> T
    ) async throws -> T {
        try await ServiceRuntime.withDatabase(url, maximumConnections: 10, logger: logger, body)
    }

    /// Creates a fresh database and runs `body` with a client connected to it.
    package static func withFreshDatabase<T: Sendable>(
        _ body: @Sendable (PostgresClient, DatabaseURL) async throws -> T
    ) async throws -> T {
        let url = try await PostgresCluster.shared.createDatabase()
        return try await withClient(url) { try await body($0, url) }
    }
}
