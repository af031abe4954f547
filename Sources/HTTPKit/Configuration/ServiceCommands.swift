import ArgumentParser
import Hummingbird
import Logging

/// What an executable tells the shared `serve` and `migrate` commands about itself.
package protocol ServiceDefinition {
    associatedtype Configuration: Sendable
    associatedtype App: ApplicationProtocol
    /// Every environment variable the service reads, for `--help`.
    static var variables: [EnvironmentVariable] { get }
    /// Reads the configuration (problems are reported by the reader).
    static func readConfiguration(_ reader: inout ConfigReader) -> Configuration
    static func chassis(of configuration: Configuration) -> ChassisSettings
    static func migrations() throws -> [Migration]
    static func application(_ configuration: Configuration, metrics: ServiceMetrics) async throws -> App
}

/// `serve`: run pending migrations, then serve HTTP until SIGTERM (the default command).
package struct ServeCommand<Service: ServiceDefinition>: AsyncParsableCommand {
    package static var configuration: CommandConfiguration {
        CommandConfiguration(
            commandName: "serve", abstract: "Run pending migrations, then serve HTTP (the default).",
            discussion: EnvironmentVariable.helpText(Service.variables))
    }

    package init() {}

    package func run() async throws {
        let configuration = ServiceRuntime.loadConfiguration(Service.readConfiguration)
        let chassis = Service.chassis(of: configuration)
        let metrics = ServiceMetrics()
        ServiceRuntime.bootstrap(settings: chassis, metrics: metrics)
        let app = try await Service.application(configuration, metrics: metrics)
        try await ServiceRuntime.serve(app, settings: chassis, logger: Logger(label: chassis.serviceName))
    }
}

/// `migrate`: apply pending database migrations and exit.
package struct MigrateCommand<Service: ServiceDefinition>: AsyncParsableCommand {
    package static var configuration: CommandConfiguration {
        CommandConfiguration(
            commandName: "migrate", abstract: "Apply pending database migrations and exit.",
            discussion: EnvironmentVariable.helpText(Service.variables))
    }

    package init() {}

    package func run() async throws {
        let configuration = ServiceRuntime.loadConfiguration(Service.readConfiguration)
        let chassis = Service.chassis(of: configuration)
        ServiceRuntime.bootstrap(settings: chassis, metrics: ServiceMetrics())
        let applied = try await ServiceRuntime.migrate(
            settings: chassis, migrations: try Service.migrations(), logger: Logger(label: chassis.serviceName))
        print(applied.isEmpty ? "database is up to date" : "applied migrations: \(applied.map(String.init).joined(separator: ", "))")
    }
}
