import ArgumentParser
import HTTPKit
import Hummingbird

struct ManaSyncCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mana-sync",
        abstract: "The sync server of the mana local-first apps.",
        discussion: EnvironmentVariable.helpText(SyncConfiguration.variables),
        subcommands: [Serve.self, Migrate.self, Import.self, Compact.self],
        defaultSubcommand: Serve.self)

    typealias Serve = ServeCommand<ManaSyncCommand>
    typealias Migrate = MigrateCommand<ManaSyncCommand>
}

/// What the shared `serve` and `migrate` commands run.
extension ManaSyncCommand: ServiceDefinition {
    static var variables: [EnvironmentVariable] { SyncConfiguration.variables }
    static func readConfiguration(_ reader: inout ConfigReader) -> SyncConfiguration { SyncConfiguration(reading: &reader) }
    static func chassis(of configuration: SyncConfiguration) -> ChassisSettings { configuration.chassis }
    static func migrations() throws -> [Migration] { try SyncMigrations.all() }
    static func application(_ configuration: SyncConfiguration, metrics: ServiceMetrics) async throws -> some ApplicationProtocol {
        try await buildApplication(configuration, metrics: metrics)
    }
}
