import Foundation
import HTTPKit
import Logging
import PostgresNIO

/// `mana-sync import`: copies the original Go mana-sync's `public.sync_changes` into our
/// change log, incrementally and resumably, then checks the spec's invariants.
///
/// A run reads the original in one read-only snapshot, in (created_at, id) order from the
/// last imported row, and writes batches; each batch (its legacy copy, its changes, their
/// heads and the resume point) commits as one transaction, so a killed run leaves every
/// (user, app) with a gap-free prefix of its rows and the next run continues after it.
/// A dry run does the same inside one transaction that it rolls back.
struct SyncImporter: Sendable {
    struct Options: Sendable {
        var source: DatabaseURL
        var target: DatabaseURL
        var dryRun = false
        var quiet = false
        /// Added to the clock at the cut-over: the old Go host's clock may run ahead.
        var cutoverMargin: Duration = .seconds(5)
        var batchSize = 100_000
    }

    let options: Options
    let logger: Logger

    /// The next placed batch, placed ahead while the current one is stored; nil when `sequential`.
    private static func ahead(_ placement: Placement, unless sequential: Bool) async throws -> Placement.Placed? {
        sequential ? nil : try await placement.next()
    }

    /// Runs one import and returns its report.
    func run() async throws -> ImportReport {
        let sourceName = "\(options.source.host):\(options.source.port)/\(options.source.database)"
        let options = self.options
        let logger = self.logger
        return try await ImportRuns.withConnections(source: options.source, target: options.target, targets: 2, logger: logger) {
            (sourceConnection: PostgresConnection, targets: [PostgresConnection]) -> ImportReport in
            let targetConnection = targets[0]
            var report = ImportReport(service: "mana-sync", source: sourceName, dryRun: options.dryRun)
            let source = LegacySyncSource(connection: sourceConnection, logger: logger)
            let target = SyncImportTarget(connection: targetConnection, logger: logger)
            try await target.prepare()
            let hasSpace = try await source.begin()
            if options.dryRun { try await targetConnection.query("BEGIN", logger: logger) }
            let state = try await target.state()
            if let previous = state.source, previous != sourceName {
                throw ImportRefusal(
                    description: "this database was imported from \(previous), not \(sourceName); refusing to mix two originals")
            }
            // The cut-over clock: the later of the original's database clock and ours, plus the margin.
            let now = max(try await source.clock(), Int64(Date().timeIntervalSince1970 * 1_000_000))
            let cutover = max(now + Int64(options.cutoverMargin.inSeconds * 1_000_000), state.cutoverCursor)
            var (upTo, after) = try await source.counts(after: state.mark)
            // Rows at or before the resume point that we do not have committed late: read everything again.
            var mark = state.mark
            if upTo != state.legacyRows {
                mark = nil
                after += upTo
            }
            var meter = ImportProgressMeter(label: "mana-sync import", total: after, quiet: options.quiet)
            let batches = try await source.batches(after: mark, lateUpTo: state.mark, hasSpace: hasSpace, batchSize: options.batchSize)
            // A run that reads rows again from the start leaves out the rows imported before.
            // It asks our server between two batches, so it neither reads nor places ahead.
            let mayHaveRows = mark == nil && state.legacyRows > 0
            // Indexes that a killed first load left out are built first (the placement reads each
            // head's last cursor, a run that reads rows again looks them up); an empty table is
            // filled without its indexes, which are built after the load. A dry run leaves
            // sync.changes alone: dropping an index would lock out the service for the whole run.
            try await target.buildDeferredIndexes(on: targets, inTransaction: options.dryRun)
            try await target.deferIndexes(
                ofEmpty: options.dryRun ? ["legacy_sync.sync_changes"] : SyncImportTarget.deferrable, inTransaction: options.dryRun)
            let imported: (@Sendable (LegacySyncSource.Batch) async throws -> Set<String>)?
            if mayHaveRows { imported = { batch in try await target.imported(of: batch) } } else { imported = nil }
            let placement = try await Placement.start(
                batches: batches, cutover: cutover, target: targetConnection, logger: logger, imported: imported)
            // Two of our server processes store a batch: the verbatim copy commits on its own
            // connection (not in a dry run, which is one transaction, nor in a run that reads
            // rows again, which looks rows up between batches).
            let legacy = options.dryRun || mayHaveRows ? nil : targets[1]
            // Batch n + 1 is read (by the original's server and this process) and placed (by this
            // process) while batch n is stored (by our server).
            var timings = SyncImportTarget.Timings()
            var waited = 0.0
            var waitStart = ContinuousClock.now
            var pending = try await placement.next()
            waited += (ContinuousClock.now - waitStart).inSeconds
            while let placed = pending {
                async let following = Self.ahead(placement, unless: mayHaveRows)
                if !options.dryRun { try await targetConnection.query("BEGIN", logger: logger) }
                let written = try await target.write(placed, source: sourceName, cutover: cutover, legacy: legacy, timings: &timings)
                if !options.dryRun { try await targetConnection.query("COMMIT", logger: logger) }
                report.rowsRead += placed.read
                report.rowsWritten += written
                meter.advance(by: placed.read)
                waitStart = ContinuousClock.now
                pending = mayHaveRows ? try await placement.next() : try await following
                waited += (ContinuousClock.now - waitStart).inSeconds
            }
            let building = ContinuousClock.now
            try await target.buildDeferredIndexes(on: targets, inTransaction: options.dryRun)
            timings.indexes = (ContinuousClock.now - building).inSeconds
            meter.finish()
            let raised = try await target.finish(source: sourceName, cutover: cutover)
            report.seconds = meter.elapsed
            report.rowsPerSecond = meter.rate
            report.facts["heads raised to the cut-over cursor in this run"] = String(raised)
            report.facts["copy phase (s): waiting for the next placed batch"] = String(format: "%.1f", waited)
            report.facts["copy phase (s): reading and placing rows (cursors, COPY text; overlaps the writes)"] = String(format: "%.1f", placement.seconds)
            report.facts["copy phase (s): COPY legacy_sync.sync_changes (overlaps the next one on a second connection)"] = String(format: "%.1f", timings.legacy)
            report.facts["copy phase (s): COPY sync.changes"] = String(format: "%.1f", timings.changes)
            report.facts["copy phase (s): heads, resume point"] = String(format: "%.1f", timings.heads)
            report.facts["copy phase (s): waiting for the verbatim copy's commit"] = String(format: "%.1f", timings.waitingForLegacy)
            report.facts["copy phase (s): building the indexes a first load defers"] = String(format: "%.1f", timings.indexes)
            let checking = ContinuousClock.now
            try await SyncImportChecks(connection: targetConnection, logger: logger).run(
                source: source, cutover: cutover, into: &report)
            report.facts["checks took (s)"] = String(format: "%.1f", (ContinuousClock.now - checking).inSeconds)
            try await source.end()
            if options.dryRun {
                try await targetConnection.query("ROLLBACK", logger: logger)
            } else {
                try await target.record(report)
            }
            return report
        }
    }
}
