import ArgumentParser
import Foundation
import HTTPKit
import Logging
import PostgresNIO

extension ManaCreditsCommand {
    /// `mana-credits import --from URL`: brings the original Bun mana-credits' data along.
    struct Import: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Import (again: only what is new or changed) the original mana-credits database into DATABASE_URL, then verify it.",
            discussion: """
                Reads the credits and gifts schemas of the original in a read-only transaction. Writes credits.*, gifts.* \
                and the legacy_credits schema of DATABASE_URL. A user whose balance does not match their ledger is left out \
                unless --accept-adjustments names a reviewed file (a --dry-run writes its template there). Exit status 1 when \
                an invariant is violated or something could not be placed, 2 when the import is refused. See docs/operations.md.
                """)

        @OptionGroup var common: ImportOptions

        @Option(help: "A reviewed adjustments file: import the users it lists with its legacy-import transactions (with --dry-run and no file there yet: write its template).")
        var acceptAdjustments: String?

        @Flag(help: "Keep e-mail addresses that the original stored as gift creator names (the public lookup shows them).")
        var keepCreatorEmails = false

        @Option(help: ArgumentHelp("Users per committed batch.", visibility: .hidden))
        var batchUsers = 1_000

        func validate() throws {
            guard batchUsers > 0 else { throw ValidationError("--batch-users must be positive") }
        }

        func run() async throws {
            let configuration = ServiceRuntime.loadConfiguration(CreditsConfiguration.init(reading:))
            var logger = Logger(label: CreditsConfiguration.serviceName)
            logger.logLevel = .warning
            if common.status {
                try await CreditsImportStatus.lines(target: configuration.chassis.database, logger: logger).forEach { print($0) }
                return
            }
            let source = try common.source()
            let options = CreditsImporter.Options(
                source: source, target: configuration.chassis.database, dryRun: common.dryRun, quiet: common.quiet, adjustmentsPath: acceptAdjustments,
                keepCreatorEmails: keepCreatorEmails, baseURL: configuration.gifts.baseURL, batchUsers: batchUsers)
            let status = try await ImportRuns.exitStatus(reportPath: common.report) {
                try await CreditsImporter(options: options, logger: logger).run()
            }
            if status != 0 { throw ExitCode(status) }
        }
    }
}
