import ArgumentParser
import Foundation
import HTTPKit
import Logging
import PostgresNIO

extension ManaSyncCommand {
    /// `mana-sync import --from URL`: brings the original Go mana-sync's changes along.
    struct Import: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Import (again: only what is new) the original mana-sync database into DATABASE_URL, then verify it.",
            discussion: """
                Reads public.sync_changes of the original in a read-only transaction, as a role that bypasses its \
                row-level security (superuser or BYPASSRLS). Writes sync.changes, sync.heads and the legacy_sync schema \
                of DATABASE_URL (as a role with BYPASSRLS). Run it before the cut-over, stop the original, run it again, \
                then switch traffic. Exit status 1 when an invariant is violated. See docs/operations.md.
                """)

        @OptionGroup var common: ImportOptions

        @Option(help: "Seconds added to the cut-over clock: new cursors start above every cursor the original can have issued.")
        var cutoverMargin: Double = 5

        @Option(help: ArgumentHelp("Rows per committed batch.", visibility: .hidden))
        var batchSize = 100_000

        func validate() throws {
            guard cutoverMargin >= 0, batchSize > 0 else { throw ValidationError("--cutover-margin and --batch-size must be positive") }
        }

        func run() async throws {
            let configuration = ServiceRuntime.loadConfiguration(SyncConfiguration.init(reading:))
            var logger = Logger(label: SyncConfiguration.serviceName)
            logger.logLevel = .warning
            if common.status {
                try await SyncImportStatus.lines(target: configuration.chassis.database, logger: logger).forEach { print($0) }
                return
            }
            let source = try common.source()
            let options = SyncImporter.Options(
                source: source, target: configuration.chassis.database, dryRun: common.dryRun, quiet: common.quiet,
                cutoverMargin: .milliseconds(Int64(cutoverMargin * 1000)), batchSize: batchSize)
            let status = try await ImportRuns.exitStatus(reportPath: common.report) {
                try await SyncImporter(options: options, logger: logger).run()
            }
            if status != 0 { throw ExitCode(status) }
        }
    }
}
