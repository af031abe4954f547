import Foundation
import Logging
import Metrics
import PostgresNIO
import Prometheus

/// Process-wide set-up shared by the `serve` and `migrate` commands of both executables.
package enum ServiceRuntime {
    /// Installs the log handler (text or JSON) and the Prometheus metrics backend.
    /// Call once per process, from a command's `run()`, never from application builders.
    package static func bootstrap(settings: ChassisSettings, metrics: ServiceMetrics) {
        let level = settings.logLevel
        if settings.logFormat == "json" {
            LoggingSystem.bootstrap { label in
                var handler = JSONLogHandler(label: label)
                handler.logLevel = level
                return handler
            }
        } else {
            LoggingSystem.bootstrap { label in
                var handler = StreamLogHandler.standardError(label: label)
                handler.logLevel = level
                return handler
            }
        }
        MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: metrics.registry))
    }

    /// Reads a configuration, or prints every problem and exits with status 78 (EX_CONFIG).
    package static func loadConfiguration<C>(_ read: (inout ConfigReader) -> C) -> C {
        var reader = ConfigReader()
        let configuration = read(&reader)
        do {
            try reader.finish()
        } catch {
            FileHandle.standardError.write(Data("\(error)\n".utf8))
            exit(78)
        }
        return configuration
    }

    /// Runs pending migrations against the database and returns the versions applied.
    package static func migrate(settings: ChassisSettings, migrations: [Migration], logger: Logger) async throws -> [Int] {
        try await withDatabase(settings.database, logger: logger) { client in
            try await MigrationRunner(
                client: client, migrations: migrations, lockName: "\(settings.serviceName)-migrations", logger: logger
            ).run()
        }
    }

    /// Runs `body` with a running client for `database` (commands and tests; the server
    /// runs its client as a service instead).
    package static func withDatabase<T: Sendable>(
        _ database: DatabaseURL, maximumConnections: Int = 4, logger: Logger,
        _ body: @Sendable (PostgresClient) async throws -> T
    ) async throws -> T {
        let client = PostgresClient(
            configuration: database.clientConfiguration(maximumConnections: maximumConnections), backgroundLogger: logger)
        return try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { await client.run() }
            defer { group.cancelAll() }
            return try await body(client)
        }
    }
}
