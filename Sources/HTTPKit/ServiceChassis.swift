import Foundation
import Hummingbird
import HummingbirdCore
import Logging
import NIOCore
import PostgresNIO
import ServiceLifecycle

/// What both services stand on: a router with the shared middleware (request id and log,
/// metrics, CORS, JSON errors), `/health`, `/ready`, `/metrics`, the PostgreSQL client run
/// as a service, migrations before the server starts, and graceful shutdown.
///
/// ```swift
/// var chassis = ServiceChassis<AppRequestContext>(settings: settings, envelope: .errorMessage, bodyLimit: 10 << 20)
/// SyncController(...).addRoutes(to: chassis.router.group("sync"))
/// let app = chassis.makeApplication(migrations: migrations)
/// try await app.runService()
/// ```
package struct ServiceChassis<Context: BodyDecodingRequestContext> where Context: InitializableFromSource<ApplicationRequestContextSource> {
    package let settings: ChassisSettings
    package let router: ServiceRouter<Context>
    package let metrics: ServiceMetrics
    package let database: PostgresClient
    package let logger: Logger
    package let body: BodyDecoder
    /// Large bodies a few at a time; add it to the route groups that take them, after their
    /// authentication (``LargeRequestLimiter``).
    package let largeRequests: LargeRequestLimiter<Context>
    package private(set) var services: [any Service] = []

    /// Sets up the router and its middleware. Routes added to `router` afterwards get them all.
    package init(
        settings: ChassisSettings,
        envelope: ErrorEnvelope,
        bodyLimit: Int,
        exemptFromDeadline: Set<String> = [],
        logger: Logger? = nil,
        metrics: ServiceMetrics = ServiceMetrics(),
        healthDetails: @escaping @Sendable () -> [String: JSONValue] = { [:] }
    ) {
        var logger = logger ?? Logger(label: settings.serviceName)
        logger.logLevel = settings.logLevel
        self.settings = settings
        self.logger = logger
        self.metrics = metrics
        let body = BodyDecoder(limit: bodyLimit, timeout: settings.bodyTimeout)
        self.body = body
        self.largeRequests = LargeRequestLimiter(concurrency: settings.largeRequestConcurrency)
        self.database = settings.database.makeClient(
            maximumConnections: settings.databasePoolSize, minimumConnections: settings.databasePoolMinimum, logger: logger)
        metrics.set("db_pool_connections_max", to: Double(settings.databasePoolSize))
        let router = ServiceRouter<Context>()
        router.add(middleware: BodyDecoderMiddleware(body))
        router.add(middleware: RequestLogMiddleware())
        router.add(middleware: PrometheusMetricsMiddleware(metrics: metrics))
        router.add(middleware: CORSAllowListMiddleware(origins: settings.corsOrigins))
        router.add(middleware: ErrorMiddleware(envelope: envelope))
        router.add(middleware: RequestDeadlineMiddleware(limit: settings.requestTimeout, exempt: exemptFromDeadline))
        HealthController<Context>(
            serviceName: settings.serviceName, database: database, metrics: metrics, healthDetails: healthDetails
        ).addRoutes(to: router)
        self.router = router
        if let interval = settings.memoryTrimInterval {
            services.append(MemoryTrim.service(every: interval, metrics: metrics))
        }
    }

    /// Serves the service's OpenAPI document at `GET /openapi.json` (read once, at start).
    package func serveOpenAPI(_ url: URL?) {
        let document = url.flatMap { try? Data(contentsOf: $0) } ?? Data(#"{"openapi":"3.1.0","info":{"title":"missing","version":"0"},"paths":{}}"#.utf8)
        router.get("openapi.json") { _, _ in
            Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: document)))
        }
    }

    /// Adds a background service that runs and shuts down with the application.
    package mutating func addService(_ service: any Service) {
        services.append(service)
    }

    /// Builds the application: migrations run before the server accepts connections.
    /// `onServerRunning` receives the bound channel (its local address has the real port).
    package func makeApplication(
        migrations: [Migration],
        server: HTTPServerBuilder? = nil,
        beforeServerStarts: [@Sendable () async throws -> Void] = [],
        onServerRunning: @escaping @Sendable (any Channel) async -> Void = { _ in }
    ) -> some ApplicationProtocol {
        let migrated = Latch()
        var app = Application(
            router: router,
            server: server ?? HTTPServerBuilder { [settings] responder in
                ConnectionOnItsEventLoop(
                    inner: HTTP1Channel(responder: responder, configuration: .init(idleTimeout: TimeAmount(settings.idleTimeout))),
                    enabled: settings.connectionOnEventLoop)
            },
            configuration: .init(
                address: .hostname(settings.host, port: settings.port),
                serverName: settings.serviceName),
            services: [database] + services.map { AfterMigrations($0, migrated: migrated) },
            onServerRunning: onServerRunning,
            logger: logger)
        let runner = MigrationRunner(
            client: database, migrations: migrations, lockName: "\(settings.serviceName)-migrations", logger: logger)
        app.beforeServerStarts {
            try await runner.run(retryingFor: MigrationRunner.startupRetryWindow)
            migrated.open()
        }
        for process in beforeServerStarts { app.beforeServerStarts(perform: process) }
        return app
    }
}

/// A background service that starts once the migrations have run, so it never reads a table
/// that is not there yet.
private struct AfterMigrations: Service {
    let service: any Service
    let migrated: Latch

    init(_ service: any Service, migrated: Latch) {
        self.service = service
        self.migrated = migrated
    }

    func run() async throws {
        // Shut down before the migrations finished: there is nothing to stop.
        await cancelWhenGracefulShutdown { await migrated.wait() }
        guard migrated.isOpen, !Task.isShuttingDownGracefully, !Task.isCancelled else { return }
        try await service.run()
    }
}
