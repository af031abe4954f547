import ArgumentParser
import Foundation
import HTTPKit
import Hummingbird
import Logging


struct ManaSyncCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mana-sync",
        abstract: "The sync server of the mana local-first apps.",
        discussion: EnvironmentVariable.helpText(SyncConfiguration.variables),
        subcommands: [Serve.self, Migrate.self, Import.self],
        defaultSubcommand: Serve.self)
}

extension ManaSyncCommand {
    struct Serve: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Run pending migrations, then serve HTTP (the default).",
            discussion: EnvironmentVariable.helpText(SyncConfiguration.variables))

        func run() async throws {
            let configuration = ServiceRuntime.loadConfiguration(SyncConfiguration.init(reading:))
            let metrics = ServiceMetrics()
            ServiceRuntime.bootstrap(settings: configuration.chassis, metrics: metrics)
            let app = try await buildApplication(configuration, metrics: metrics)
            try await ServiceRuntime.serve(app, settings: configuration.chassis, logger: Logger(label: configuration.chassis.serviceName))
        }
    }

    struct Migrate: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Apply pending database migrations and exit.",
            discussion: EnvironmentVariable.helpText(SyncConfiguration.variables))

        func run() async throws {
            let configuration = ServiceRuntime.loadConfiguration(SyncConfiguration.init(reading:))
            ServiceRuntime.bootstrap(settings: configuration.chassis, metrics: ServiceMetrics())
            let logger = Logger(label: SyncConfiguration.serviceName)
            let applied = try await ServiceRuntime.migrate(
                settings: configuration.chassis, migrations: try SyncMigrations.all(), logger: logger)
            print(applied.isEmpty ? "database is up to date" : "applied migrations: \(applied.map(String.init).joined(separator: ", "))")
        }
    }
}
