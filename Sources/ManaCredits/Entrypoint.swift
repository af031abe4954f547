import ArgumentParser
import HTTPKit
import Hummingbird

struct ManaCreditsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mana-credits",
        abstract: "Prepaid credits, gift codes, Stripe purchases and the Cloud Sync subscription.",
        discussion: EnvironmentVariable.helpText(CreditsConfiguration.variables),
        subcommands: [Serve.self, Migrate.self, Audit.self, Import.self, Packages.self, Gifts.self, DevKeys.self, DevToken.self],
        defaultSubcommand: Serve.self)

    typealias Serve = ServeCommand<ManaCreditsCommand>
    typealias Migrate = MigrateCommand<ManaCreditsCommand>
}

/// What the shared `serve` and `migrate` commands run.
extension ManaCreditsCommand: ServiceDefinition {
    static var variables: [EnvironmentVariable] { CreditsConfiguration.variables }
    static func readConfiguration(_ reader: inout ConfigReader) -> CreditsConfiguration { CreditsConfiguration(reading: &reader) }
    static func chassis(of configuration: CreditsConfiguration) -> ChassisSettings { configuration.chassis }
    static func migrations() throws -> [Migration] { try CreditsMigrations.all() }
    static func application(_ configuration: CreditsConfiguration, metrics: ServiceMetrics) async throws -> some ApplicationProtocol {
        try await buildApplication(configuration, metrics: metrics)
    }
}
