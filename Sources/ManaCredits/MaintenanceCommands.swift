import ArgumentParser
import Foundation
import HTTPKit
import Logging
import PostgresNIO

extension ManaCreditsCommand {
    /// Runs `body` with a running database client for a maintenance command.
    static func withDatabase<T: Sendable>(_ body: @Sendable (PostgresClient, Logger) async throws -> T) async throws -> T {
        let configuration = ServiceRuntime.loadConfiguration(CreditsConfiguration.init(reading:))
        var quiet = Logger(label: CreditsConfiguration.serviceName)
        quiet.logLevel = .warning
        let logger = quiet
        return try await ServiceRuntime.withDatabase(configuration.chassis.database, logger: logger) { client in
            try await body(client, logger)
        }
    }

    /// `mana-credits audit`: checks every ledger invariant; exit status 1 on any violation.
    struct Audit: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Check every ledger invariant over the whole database; exit 1 on any violation.")

        func run() async throws {
            let violations = try await ManaCreditsCommand.withDatabase { client, logger in
                try await LedgerAudit(client: client, logger: logger).run()
            }
            if violations.isEmpty {
                print("ledger audit: no violations")
            } else {
                violations.forEach { print($0) }
                print("ledger audit: \(violations.count) violation(s)")
                throw ExitCode(1)
            }
        }
    }

    /// `mana-credits packages list|add|deactivate|install-defaults`.
    struct Packages: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "List, add and deactivate credit packages.",
            subcommands: [List.self, Add.self, Deactivate.self, InstallDefaults.self], defaultSubcommand: List.self)

        struct List: AsyncParsableCommand {
            static let configuration = CommandConfiguration(abstract: "List every package.")
            func run() async throws {
                let packages = try await ManaCreditsCommand.withDatabase { client, logger in
                    try await PackageRepository(client: client, logger: logger).list(activeOnly: false)
                }
                for package in packages {
                    print("\(package.name)\t\(package.credits) credits\t\(package.priceEuroCents) cents\t\(package.active ? "active" : "inactive")\t\(package.id)")
                }
            }
        }

        struct Add: AsyncParsableCommand {
            static let configuration = CommandConfiguration(abstract: "Add a package, or update and reactivate one of that name.")
            @Option var name: String
            @Option var credits: Int64
            @Option(help: "Price in euro cents.") var price: Int64
            @Option var description: String = ""
            @Option var sortOrder: Int = 0

            func validate() throws {
                guard credits > 0, price > 0 else { throw ValidationError("credits and price must be positive") }
            }

            func run() async throws {
                try await ManaCreditsCommand.withDatabase { client, logger in
                    try await PackageRepository(client: client, logger: logger).upsert(
                        name: name, description: description, credits: credits, priceEuroCents: price, sortOrder: sortOrder)
                }
                print("package \(name) saved")
            }
        }

        struct Deactivate: AsyncParsableCommand {
            static let configuration = CommandConfiguration(abstract: "Stop selling a package (purchases keep it).")
            @Option var name: String

            func run() async throws {
                let found = try await ManaCreditsCommand.withDatabase { client, logger in
                    try await PackageRepository(client: client, logger: logger).deactivate(name: name)
                }
                guard found else { throw ValidationError("no package named \(name)") }
                print("package \(name) deactivated")
            }
        }

        struct InstallDefaults: AsyncParsableCommand {
            static let configuration = CommandConfiguration(
                commandName: "install-defaults", abstract: "Install (or refresh) the documented default packages.")

            func run() async throws {
                try await ManaCreditsCommand.withDatabase { client, logger in
                    let repository = PackageRepository(client: client, logger: logger)
                    for (index, package) in PackageRepository.defaults.enumerated() {
                        try await repository.upsert(
                            name: package.name, description: package.description, credits: package.credits,
                            priceEuroCents: package.priceEuroCents, sortOrder: index)
                    }
                }
                print("installed \(PackageRepository.defaults.count) default packages")
            }
        }
    }
}

extension ManaCreditsCommand {
    /// `mana-credits gifts expire`: the expiry job once, for a cron or by hand.
    struct Gifts: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Gift code maintenance.", subcommands: [Expire.self])

        struct Expire: AsyncParsableCommand {
            static let configuration = CommandConfiguration(
                abstract: "Mark active gift codes past their expiry as expired and refund their creators (each once).")
            func run() async throws {
                let expired = try await ManaCreditsCommand.withDatabase { client, logger in
                    try await GiftRepository(client: client, baseURL: "", logger: logger).expire()
                }
                print("expired and refunded \(expired) gift code(s)")
            }
        }
    }
}
