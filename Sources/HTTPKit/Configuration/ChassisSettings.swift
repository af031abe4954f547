import Logging

/// The settings every service has: where it listens, its database, CORS, logging.
package struct ChassisSettings: Sendable {
    package var serviceName: String
    package var host: String
    package var port: Int
    package var corsOrigins: [String]
    package var logLevel: Logger.Level
    package var logFormat: String
    package var isProduction: Bool
    package var database: DatabaseURL
    package var databasePoolSize: Int
    /// Connections the pool keeps open however idle (``DatabaseURL/clientConfiguration(maximumConnections:minimumConnections:)``).
    package var databasePoolMinimum = 0
    /// A connection that sends no complete request for this long is closed (slow or idle clients).
    package var idleTimeout: Duration
    /// A request body that has not fully arrived after this long is refused with 408.
    package var bodyTimeout: Duration
    /// A request that has not produced its response after this long is cancelled with 503.
    package var requestTimeout: Duration
    /// After SIGTERM, the most time graceful shutdown may take before the process exits anyway.
    package var shutdownTimeout: Duration
    /// How often free heap memory is given back to the kernel (``MemoryTrim``); nil: never.
    package var memoryTrimInterval: Duration? = .seconds(10)
    /// Requests with a body over ``largeRequestBytes`` served at once (``LargeRequestLimiter``).
    package var largeRequestConcurrency = 2
    /// Each HTTP connection's handling runs on the event loop owning its socket (``ConnectionOnItsEventLoop``).
    package var connectionOnEventLoop = true
    /// What counts as a large request body, by its `Content-Length`.
    package static let largeRequestBytes = 1 << 20

    package init(
        serviceName: String, host: String = "127.0.0.1", port: Int, corsOrigins: [String] = [],
        logLevel: Logger.Level = .info, logFormat: String = "text", isProduction: Bool = false,
        database: DatabaseURL, databasePoolSize: Int = 20, idleTimeout: Duration = .seconds(30), bodyTimeout: Duration = .seconds(30),
        requestTimeout: Duration = .seconds(30), shutdownTimeout: Duration = .seconds(10)
    ) {
        self.serviceName = serviceName
        self.host = host
        self.port = port
        self.corsOrigins = corsOrigins
        self.logLevel = logLevel
        self.logFormat = logFormat
        self.isProduction = isProduction
        self.database = database
        self.databasePoolSize = databasePoolSize
        self.idleTimeout = idleTimeout
        self.bodyTimeout = bodyTimeout
        self.requestTimeout = requestTimeout
        self.shutdownTimeout = shutdownTimeout
    }

    /// The documented variables behind these settings, with a service's own defaults.
    package static func variables(defaultPort: Int, defaultDatabase: String) -> [EnvironmentVariable] {
        [
            EnvironmentVariable("MANA_ENV", default: "development", help: "development or production; production refuses development defaults"),
            EnvironmentVariable("HOST", default: "0.0.0.0", help: "address to listen on"),
            EnvironmentVariable("PORT", default: String(defaultPort), help: "port to listen on"),
            EnvironmentVariable(
                "DATABASE_URL", default: "postgresql://mana:devpassword@localhost:5432/\(defaultDatabase)",
                help: "PostgreSQL URL (postgres:// or postgresql://, optional ?sslmode=disable|prefer|require|verify-ca|verify-full)",
                refusedInProduction: true),
            EnvironmentVariable(
                "DATABASE_TLS_INSECURE", default: "0",
                help: "1 lets production use an sslmode weaker than verify-full (a database on a private network, on purpose)"),
            EnvironmentVariable("DATABASE_POOL_SIZE", default: "20", help: "maximum PostgreSQL connections of this process"),
            EnvironmentVariable(
                "DATABASE_POOL_MINIMUM", default: "4",
                help: "PostgreSQL connections kept open however idle, at most DATABASE_POOL_SIZE (the pool closes the others after 10 s idle, with a timer per release)"),
            EnvironmentVariable(
                "HTTP_IDLE_TIMEOUT", default: "30", help: "seconds before a connection without a complete request (idle or slow) is closed"),
            EnvironmentVariable("HTTP_BODY_TIMEOUT", default: "30", help: "seconds a request body may take to arrive before 408"),
            EnvironmentVariable(
                "HTTP_REQUEST_TIMEOUT", default: "30", help: "seconds a request may take to answer before it is cancelled with 503"),
            EnvironmentVariable(
                "SHUTDOWN_TIMEOUT", default: "10",
                help: "seconds graceful shutdown may take after SIGTERM before open connections are cut and the process exits"),
            EnvironmentVariable(
                "MEMORY_TRIM_INTERVAL", default: "10",
                help: "seconds between returns of free heap memory to the kernel (glibc malloc_trim); the second run also hands back the code pages of the start (MADV_PAGEOUT); 0 switches both off"),
            EnvironmentVariable(
                "LARGE_REQUEST_CONCURRENCY", default: "2",
                help: "authenticated requests with a body over 1 MiB (by Content-Length) served at once on the routes that take them; the others wait within the request timeout"),
            EnvironmentVariable(
                "MANA_CONNECTION_ON_EVENT_LOOP", default: "1",
                help: "1 runs each HTTP connection's handling on the event loop owning its socket (no thread hop per read and write); 0 on Swift Concurrency's threads"),
            EnvironmentVariable("CORS_ORIGINS", default: "", help: "comma-separated origins allowed by CORS (* allows any)"),
            EnvironmentVariable("LOG_LEVEL", default: "info", help: "trace, debug, info, notice, warning, error or critical"),
            EnvironmentVariable("LOG_FORMAT", default: "text", help: "text or json (one JSON object per line)"),
        ]
    }

    /// Reads the settings, recording each problem in `reader`.
    package init(reading reader: inout ConfigReader, serviceName: String, defaultPort: Int, defaultDatabase: String) {
        let variables = Dictionary(
            uniqueKeysWithValues: Self.variables(defaultPort: defaultPort, defaultDatabase: defaultDatabase).map { ($0.name, $0) })
        _ = reader.choice(variables["MANA_ENV"]!, from: ["development", "production", "test"])
        let host = reader.string(variables["HOST"]!)
        let port = reader.int(variables["PORT"]!, in: 0...65535)
        let poolSize = reader.int(variables["DATABASE_POOL_SIZE"]!, in: 1...500)
        let poolMinimum = reader.int(variables["DATABASE_POOL_MINIMUM"]!, in: 0...500)
        let idleTimeout = reader.seconds(variables["HTTP_IDLE_TIMEOUT"]!, in: 0.1...3600)
        let bodyTimeout = reader.seconds(variables["HTTP_BODY_TIMEOUT"]!, in: 0.1...3600)
        let requestTimeout = reader.seconds(variables["HTTP_REQUEST_TIMEOUT"]!, in: 0.1...3600)
        let shutdownTimeout = reader.seconds(variables["SHUTDOWN_TIMEOUT"]!, in: 0.1...3600)
        let trimInterval = reader.seconds(variables["MEMORY_TRIM_INTERVAL"]!, in: 0...3600)
        let largeRequests = reader.int(variables["LARGE_REQUEST_CONCURRENCY"]!, in: 1...1000)
        let onEventLoop = reader.bool(variables["MANA_CONNECTION_ON_EVENT_LOOP"]!)
        let origins = reader.list(variables["CORS_ORIGINS"]!)
        let levelText = reader.choice(
            variables["LOG_LEVEL"]!, from: ["info", "trace", "debug", "notice", "warning", "error", "critical"])
        let format = reader.choice(variables["LOG_FORMAT"]!, from: ["text", "json"])
        let databaseText = reader.string(variables["DATABASE_URL"]!)
        var database: DatabaseURL
        do {
            database = try DatabaseURL(databaseText)
        } catch {
            reader.report("\(error)")
            database = try! DatabaseURL("postgresql://invalid@localhost/invalid")
        }
        if reader.isProduction {
            // Production refuses settings that are fine on a laptop and dangerous on the internet.
            if database.sslMode != "verify-full", reader.string(variables["DATABASE_TLS_INSECURE"]!) != "1" {
                reader.report(
                    "DATABASE_URL: production needs sslmode=verify-full (it has \(database.sslMode)); "
                        + "set DATABASE_TLS_INSECURE=1 to accept a weaker mode on purpose")
            }
            if origins.contains("*") {
                reader.report("CORS_ORIGINS: * with credentials lets every web site act as the signed-in user; list the origins")
            }
        }
        self.init(
            serviceName: serviceName, host: host, port: port, corsOrigins: origins,
            logLevel: Logger.Level(rawValue: levelText) ?? .info, logFormat: format, isProduction: reader.isProduction,
            database: database, databasePoolSize: poolSize, idleTimeout: idleTimeout, bodyTimeout: bodyTimeout,
            requestTimeout: requestTimeout, shutdownTimeout: shutdownTimeout)
        // A pool smaller than the default minimum keeps all of its connections.
        databasePoolMinimum = min(poolMinimum, poolSize)
        memoryTrimInterval = trimInterval == .zero ? nil : trimInterval
        largeRequestConcurrency = largeRequests
        connectionOnEventLoop = onEventLoop
    }
}
