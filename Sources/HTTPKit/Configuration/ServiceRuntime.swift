import Foundation
import Logging
import Metrics
import PostgresNIO
import Prometheus
import Hummingbird
import ServiceLifecycle

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
                var handler = LazyMetadataLogHandler(StreamLogHandler.standardError(label: label))
                handler.logLevel = level
                return handler
            }
        }
        MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: metrics.registry))
    }

    /// Runs a service's application until SIGTERM or SIGINT, then shuts it down gracefully
    /// within `settings.shutdownTimeout` whatever its peers do (a WebSocket peer that never
    /// answers the close frame, a stream that never drains): past the bound the remaining work
    /// is cancelled, and a process still alive two seconds after that exits.
    package static func serve(_ app: some ApplicationProtocol, settings: ChassisSettings, logger: Logger) async throws {
        var configuration = ServiceGroupConfiguration(
            services: [
                .init(service: app),
                // Last, so graceful shutdown reaches it first: it arms the backstop at once.
                .init(service: ShutdownBackstop(limit: settings.shutdownTimeout + .seconds(2), logger: logger)),
            ],
            gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)
        configuration.maximumGracefulShutdownDuration = settings.shutdownTimeout
        try await ServiceGroup(configuration: configuration).run()
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
            ).run(retryingFor: MigrationRunner.startupRetryWindow)
        }
    }

    /// Runs `body` with a running client for `database` (commands and tests; the server
    /// runs its client as a service instead).
    package static func withDatabase<T: Sendable>(
        _ database: DatabaseURL, maximumConnections: Int = 4, logger: Logger,
        _ body: @Sendable (PostgresClient) async throws -> T
    ) async throws -> T {
        let client = database.makeClient(maximumConnections: maximumConnections, logger: logger)
        return try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { await client.run() }
            defer { group.cancelAll() }
            return try await body(client)
        }
    }
}

/// Waits for graceful shutdown, then ends the process if it is still running after `limit`:
/// cancellation that some task ignores must not keep a pod terminating.
struct ShutdownBackstop: Service {
    let limit: Duration
    let logger: Logger

    func run() async throws {
        try? await gracefulShutdown()
        let limit = self.limit
        let logger = self.logger
        Thread.detachNewThread {
            Thread.sleep(forTimeInterval: limit.inSeconds)
            logger.error("graceful shutdown did not finish in time; exiting", metadata: ["limit": "\(limit)"])
            exit(0)
        }
    }
}
