import Foundation
import HTTPKit
import Logging
import PostgresNIO

/// `mana-credits import`: copies the original Bun mana-credits' credits and gifts into ours,
/// incrementally and resumably, then checks the spec's invariants.
///
/// A run reads the original in one read-only snapshot. Each user's original rows have a
/// digest (count and hash sum); a run takes the users that are new, changed or held back,
/// in batches. A batch (its legacy copy, every placeable row of its users, their state)
/// commits as one transaction, so a user is imported all or nothing and a killed run
/// resumes with the users it had not reached. A dry run does the same inside one
/// transaction that it rolls back.
struct CreditsImporter: Sendable {
    struct Options: Sendable {
        var source: DatabaseURL
        var target: DatabaseURL
        var dryRun = false
        var quiet = false
        var adjustmentsPath: String?
        var keepCreatorEmails = false
        var baseURL = "https://mana.how"
        var batchUsers = 1_000
    }

    let options: Options
    let logger: Logger

    /// Runs one import and returns its report.
    func run() async throws -> ImportReport {
        let sourceName = "\(options.source.host):\(options.source.port)/\(options.source.database)"
        let options = self.options
        let logger = self.logger
        return try await ImportRuns.withConnections(source: options.source, target: options.target, logger: logger) {
            (sourceConnection: PostgresConnection, targetConnection: PostgresConnection) -> ImportReport in
            let source = LegacyCreditsSource(connection: sourceConnection, logger: logger)
            let target = CreditsImportTarget(connection: targetConnection, logger: logger)
            return try await Self.run(options, sourceName: sourceName, source: source, target: target, logger: logger)
        }
    }

    private static func run(
        _ options: Options, sourceName: String, source: LegacyCreditsSource, target: CreditsImportTarget, logger: Logger
    ) async throws -> ImportReport {
        var report = ImportReport(service: "mana-credits", source: sourceName, dryRun: options.dryRun)
        let connection = target.connection
        try await target.prepare()
        try await source.begin()
        if options.dryRun { try await connection.query("BEGIN", logger: logger) }
        let state = try await target.state()
        if let previous = state.source, previous != sourceName {
            throw ImportRefusal(description: "this database was imported from \(previous), not \(sourceName); refusing to mix two originals")
        }
        // A dry run with a FILE that does not exist yet writes the template there.
        var accepted: [String: CreditsAdjustments.Entry] = [:]
        var writesTemplate = false
        if let path = options.adjustmentsPath {
            if FileManager.default.fileExists(atPath: path) {
                do {
                    let file = try CreditsAdjustments.read(from: path)
                    accepted = Dictionary(file.users.map { ($0.userId, $0) }, uniquingKeysWith: { first, _ in first })
                } catch {
                    throw ImportRefusal(description: "--accept-adjustments \(path): \(error)")
                }
            } else if options.dryRun {
                writesTemplate = true
            } else {
                throw ImportRefusal(description: "--accept-adjustments \(path): no such file (a --dry-run writes its template)")
            }
        }

        let digests = try await source.digests()
        let todo = digests.filter { user, digest in
            guard let known = state.users[user] else { return true }
            return known.state != "imported" || known.digest != digest.digest
        }.keys.sorted()
        var meter = ImportProgressMeter(
            label: "mana-credits import", total: todo.reduce(0) { $0 + digests[$1]!.rows }, quiet: options.quiet)

        func inTransaction<T>(_ body: () async throws -> T) async throws -> T {
            if options.dryRun { return try await body() }
            try await connection.query("BEGIN", logger: logger)
            let result = try await body()
            try await connection.query("COMMIT", logger: logger)
            return result
        }

        if !options.dryRun { try await target.claim(source: sourceName) }
        let packages = try await source.rows(of: CreditsImportMapping.packages, users: [])
        report.rowsRead += packages.count
        report.rowsWritten += try await inTransaction { try await target.writePackages(packages.text) }

        var needed: [CreditsAdjustments.Entry] = []
        let batches = stride(from: 0, to: todo.count, by: options.batchUsers).map { Array(todo[$0..<min(todo.count, $0 + options.batchUsers)]) }
        // The original is read one batch ahead, on its own connection, while ours writes.
        var upcoming = batches.first.map { users in Task { try await Self.read(users, from: source) } }
        for (index, users) in batches.enumerated() {
            let (rows, read, ledger) = try await upcoming!.value
            upcoming = index + 1 < batches.count ? Task { [next = batches[index + 1]] in try await Self.read(next, from: source) } : nil
            var batch = CreditsImportTarget.Batch(rows: rows)
            let placed = try await target.placed(users: users)
            for user in users {
                let plan = CreditsLedgerPlan(
                    userID: user, originals: ledger.transactions[user] ?? [], balance: ledger.balances[user], placed: placed[user] ?? [],
                    accepted: accepted[user])
                if let entry = plan.needed { needed.append(entry) }
                batch.users.append((user, plan, digests[user]!.digest))
            }
            report.rowsWritten += try await inTransaction {
                try await target.write(batch, baseURL: options.baseURL, keepCreatorEmails: options.keepCreatorEmails)
            }
            report.rowsRead += read
            meter.advance(by: read)
        }
        report.rowsWritten += try await inTransaction { try await target.writeRedemptions() }
        meter.finish()
        if !options.dryRun { try await target.finish(source: sourceName) }
        report.seconds = meter.elapsed
        report.rowsPerSecond = meter.rate
        report.facts["users read in this run (new, changed or held back)"] = String(todo.count)
        if !needed.isEmpty {
            report.facts["users needing a reviewed adjustment"] = String(needed.count)
        }
        if writesTemplate, let path = options.adjustmentsPath {
            try CreditsAdjustments(source: sourceName, users: needed).write(to: path)
            report.facts["adjustments template written"] = "\(path) (\(needed.count) user(s))"
        }
        let checking = ContinuousClock.now
        try await CreditsImportChecks(connection: connection, logger: logger).run(
            sourceCounts: try await source.counts(), into: &report)
        report.facts["checks took (s)"] = String(format: "%.1f", (ContinuousClock.now - checking).inSeconds)
        try await source.end()
        if options.dryRun {
            try await connection.query("ROLLBACK", logger: logger)
        } else {
            try await target.record(report)
        }
        return report
    }

    /// One batch of the original: every user table's rows as COPY text, their count, and the ledger figures.
    private static func read(_ users: [String], from source: LegacyCreditsSource) async throws
        -> (rows: [String: String], count: Int, ledger: (transactions: [String: [CreditsLedgerPlan.Original]], balances: [String: CreditsLedgerPlan.BalanceRow]))
    {
        var rows: [String: String] = [:]
        var count = 0
        for table in CreditsImportMapping.userTables {
            let read = try await source.rows(of: table, users: users)
            rows[table.name] = read.text
            count += read.count
        }
        return (rows, count, try await source.ledger(users: users))
    }
}
