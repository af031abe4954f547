import ArgumentParser
import Foundation
import HTTPKit
import Hummingbird
import Logging


struct ManaCreditsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mana-credits",
        abstract: "Prepaid credits, gift codes, Stripe purchases and the Cloud Sync subscription.",
        discussion: EnvironmentVariable.helpText(CreditsConfiguration.variables),
        subcommands: [Serve.self, Migrate.self, Audit.self, Import.self, Packages.self, Gifts.self, DevKeys.self, DevToken.self],
        defaultSubcommand: Serve.self)
}

extension ManaCreditsCommand {
    struct Serve: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Run pending migrations, then serve HTTP (the default).",
            discussion: EnvironmentVariable.helpText(CreditsConfiguration.variables))

        func run() async throws {
            let configuration = ServiceRuntime.loadConfiguration(CreditsConfiguration.init(reading:))
            let metrics = ServiceMetrics()
            ServiceRuntime.bootstrap(settings: configuration.chassis, metrics: metrics)
            let app = try await buildApplication(configuration, metrics: metrics)
            try await ServiceRuntime.serve(app, settings: configuration.chassis, logger: Logger(label: configuration.chassis.serviceName))
        }
    }

    struct Migrate: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Apply pending database migrations and exit.",
            discussion: EnvironmentVariable.helpText(CreditsConfiguration.variables))

        func run() async throws {
            let configuration = ServiceRuntime.loadConfiguration(CreditsConfiguration.init(reading:))
            ServiceRuntime.bootstrap(settings: configuration.chassis, metrics: ServiceMetrics())
            let logger = Logger(label: CreditsConfiguration.serviceName)
            let applied = try await ServiceRuntime.migrate(
                settings: configuration.chassis, migrations: try CreditsMigrations.all(), logger: logger)
            print(applied.isEmpty ? "database is up to date" : "applied migrations: \(applied.map(String.init).joined(separator: ", "))")
        }
    }
}
