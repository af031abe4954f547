import ArgumentParser
import HTTPKit
import Logging

extension ManaSyncCommand {
    /// `mana-sync compact [--user ID] [--older-than DURATION]`: folds old history now, beside
    /// running replicas (the same fold and locks as the background compaction).
    struct Compact: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Fold each record's changes older than a horizon into at most two rows (online; docs/sync.md).",
            discussion: """
                Runs beside the serving replicas: small transactions, one (user, app) at a time, skipping any that \
                another replica is folding. Prints what it did. The database must be migrated (mana-sync migrate).
                """)

        @Option(help: "Fold only this user's history.")
        var user: String?

        @Option(help: "Fold changes older than this (7d, 12h, 30m, 45s; default SYNC_COMPACT_AFTER).")
        var olderThan: String?

        func validate() throws {
            if let olderThan, DurationText.parse(olderThan) == nil {
                throw ValidationError("--older-than: '\(olderThan)' is not a duration (e.g. 7d, 12h, 30m, 45s)")
            }
            if let user, user.isEmpty { throw ValidationError("--user must not be empty") }
        }

        func run() async throws {
            let configuration = ServiceRuntime.loadConfiguration(SyncConfiguration.init(reading:))
            var logger = Logger(label: SyncConfiguration.serviceName)
            logger.logLevel = .warning
            let age = olderThan.flatMap(DurationText.parse) ?? configuration.compaction.after
            let horizon = Compactor.horizon(olderThan: age)
            let user = self.user
            let quiet = logger
            let outcome = try await ServiceRuntime.withDatabase(configuration.chassis.database, logger: logger) { client in
                try await Compactor(client: client, logger: quiet, metrics: ServiceMetrics()).run(horizon: horizon, user: user)
            }
            print(
                "compacted \(outcome.pairs) (user, app) histories up to \(Timestamp.format(microseconds: horizon)): "
                    + "\(outcome.rowsFolded) rows folded, \(outcome.rowsRemoved) removed, \(outcome.recordsSkipped) records skipped, "
                    + "\(outcome.busy) busy elsewhere")
        }
    }
}
