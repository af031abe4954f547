import HTTPKit
import Logging
import PostgresNIO
import Synchronization

/// When and how far history is compacted (`SYNC_COMPACT_AFTER`, `SYNC_COMPACT_INTERVAL`).
struct CompactionSettings: Sendable {
    /// Changes older than this fold; zero turns the background compaction off.
    var after: Duration = .seconds(7 * 86_400)
    /// How often the background compaction runs; zero turns it off.
    var interval: Duration = .seconds(3_600)
    /// Rows one batch (one transaction) deletes at most.
    var batchRows = 2_000

    var enabled: Bool { after > .zero && interval > .zero }

    enum Variables {
        static let after = EnvironmentVariable(
            "SYNC_COMPACT_AFTER", default: "7d", help: "fold each record's changes older than this into at most two rows (0: off)")
        static let interval = EnvironmentVariable(
            "SYNC_COMPACT_INTERVAL", default: "1h", help: "how often the background compaction runs (0: off)")
        static var all: [EnvironmentVariable] { [after, interval] }
    }

    init() {}

    init(reading reader: inout ConfigReader) {
        after = reader.duration(Variables.after, in: .zero...Duration.seconds(3_650 * 86_400))
        interval = reader.duration(Variables.interval, in: .zero...Duration.seconds(30 * 86_400))
    }
}

/// Folds old history (``HistoryFold``) in PostgreSQL, online: in small transactions beside
/// pushes and pulls, on any number of replicas (a transaction-level advisory lock per
/// (user, app) keeps two from folding the same history), without moving a cursor.
///
/// For each (user, app) with changes older than the horizon that were not folded yet, one
/// connection reads those changes in (table, record, cursor) order from one snapshot, the
/// fold of each record is planned as its rows go by, and the plans are carried out in
/// batches on other connections by `sync.compact_apply` (migration 0005): first the folded
/// update, then the deletes, in one transaction per batch. Every state in between is a log a
/// client may pull from, since a plan never removes a row before the row that replaces it is
/// written.
struct Compactor: Sendable {
    let client: PostgresClient
    let logger: Logger
    let metrics: ServiceMetrics
    let batchRows: Int
    let status: CompactionStatus

    /// What one run did.
    struct Outcome: Sendable, Equatable {
        /// (user, app) pairs folded.
        var pairs = 0
        /// Pairs another replica (or command) was folding at the same time.
        var busy = 0
        /// Folded updates written.
        var rowsFolded = 0
        /// Rows deleted.
        var rowsRemoved = 0
        /// Records left as they are: a timestamp no client can compare.
        var recordsSkipped = 0

        static func += (lhs: inout Outcome, rhs: Outcome) {
            lhs.pairs += rhs.pairs
            lhs.busy += rhs.busy
            lhs.rowsFolded += rhs.rowsFolded
            lhs.rowsRemoved += rhs.rowsRemoved
            lhs.recordsSkipped += rhs.recordsSkipped
        }
    }

    init(
        client: PostgresClient, logger: Logger, metrics: ServiceMetrics, status: CompactionStatus = CompactionStatus(),
        batchRows: Int = CompactionSettings().batchRows
    ) {
        self.client = client
        self.logger = logger
        self.metrics = metrics
        self.status = status
        self.batchRows = batchRows
    }

    /// The series this type writes, at zero from the start.
    static let declared: [(String, [(String, String)])] = [
        ("sync_compaction_rows_folded_total", []), ("sync_compaction_rows_removed_total", []),
        ("sync_compaction_records_skipped_total", []), ("sync_compaction_runs_total", [("outcome", "ok")]),
        ("sync_compaction_runs_total", [("outcome", "failed")]),
    ]

    /// The horizon `age` before now, as a cursor (microseconds since the epoch).
    static func horizon(olderThan age: Duration, floor: Duration = minimumAge, now: Int64 = Timestamp.nowMicroseconds()) -> Int64 {
        now - max(age, floor).microseconds
    }

    /// Changes younger than this are not folded, whatever age is asked for (the `floor` of
    /// ``horizon(olderThan:floor:now:)``; the background compaction of a process without a
    /// page cache, `SYNC_PAGE_CACHE_BYTES=0`, uses none, and so should every replica then): the page cache
    /// (``LogSegments``) cuts pages only after a `since` at most ``LogSegments/Settings/recent``
    /// old from segments at most ``LogSegments/Settings/maximumAge`` old, and a page cut from a
    /// segment read before a fold of its rows would miss the updates folded away. An hour
    /// covers both (30 min 30 s) with room for clocks of different machines; compaction is for
    /// history days old (`SYNC_COMPACT_AFTER`, 7 days).
    static let minimumAge: Duration = .seconds(3600)

    /// Folds every (user, app), or one user's, up to `horizon`.
    @discardableResult
    func run(horizon: Int64, user: String? = nil) async throws -> Outcome {
        var outcome = Outcome()
        do {
            let candidates = try await client.withGuardedConnection { [logger] connection in
                var pairs: [(String, String)] = []
                let rows = try await connection.query(
                    "SELECT user_id, app_id FROM sync.compaction_candidates(\(horizon)::bigint, \(user)::text)", logger: logger)
                for try await pair in rows.decode((String, String).self) { pairs.append(pair) }
                return pairs
            }
            for (userID, appID) in candidates {
                outcome += try await compact(userID: userID, appID: appID, horizon: horizon)
            }
            let bytes = try await tableBytes()
            let finished = Timestamp.nowMicroseconds()
            status.record(outcome, tableBytes: bytes, at: finished)
            metrics.set("sync_changes_table_bytes", to: Double(bytes))
            metrics.set("sync_compaction_last_run_timestamp_seconds", to: Double(finished) / 1e6)
            metrics.count("sync_compaction_runs_total", [("outcome", "ok")])
            return outcome
        } catch {
            metrics.count("sync_compaction_runs_total", [("outcome", "failed")])
            throw error
        }
    }

    /// `sync.changes` with its indexes and TOAST, in bytes.
    func tableBytes() async throws -> Int64 {
        try await client.withGuardedConnection { [logger] connection in
            let rows = try await connection.query("SELECT pg_total_relation_size('sync.changes')", logger: logger)
            for try await bytes in rows.decode(Int64.self) { return bytes }
            return 0
        }
    }

    /// One batch of plans, carried out as one transaction.
    private struct Batch {
        var targets: [Int64] = []
        var names: [String] = []
        var sources: [Int64] = []
        var remove: [Int64] = []

        var isEmpty: Bool { targets.isEmpty && remove.isEmpty }

        mutating func add(_ plan: HistoryFold.Plan) {
            if let rewrite = plan.rewrite {
                for source in rewrite.sources {
                    targets.append(rewrite.target)
                    names.append(source.name)
                    sources.append(source.cursor)
                }
            }
            remove.append(contentsOf: plan.remove)
        }
    }

    /// Folds one (user, app) up to `horizon`.
    func compact(userID: String, appID: String, horizon: Int64) async throws -> Outcome {
        let outcome = try await client.withGuardedTransaction(logger: logger) { connection in
            try await self.fold(on: connection, userID: userID, appID: appID, horizon: horizon)
        }
        metrics.count("sync_compaction_rows_folded_total", by: outcome.rowsFolded)
        metrics.count("sync_compaction_rows_removed_total", by: outcome.rowsRemoved)
        metrics.count("sync_compaction_records_skipped_total", by: outcome.recordsSkipped)
        if outcome.rowsRemoved > 0 {
            logger.info(
                "compacted history",
                metadata: [
                    "app": .string(appID), "rowsFolded": .stringConvertible(outcome.rowsFolded),
                    "rowsRemoved": .stringConvertible(outcome.rowsRemoved),
                ])
        }
        return outcome
    }

    /// The reading side of ``compact(userID:appID:horizon:)``, inside its transaction.
    private func fold(on connection: PostgresConnection, userID: String, appID: String, horizon: Int64) async throws -> Outcome {
        var outcome = Outcome()
        let lockName = "mana-sync compaction \(userID) \(appID)"
        let locked = try await connection.query(
            "SELECT pg_try_advisory_xact_lock(hashtextextended(\(lockName)::text, 0))", logger: logger)
        for try await granted in locked.decode(Bool.self) where !granted {
            outcome.busy = 1
            return outcome
        }
        try await connection.query("SELECT sync.enter_user(\(userID)::text)", logger: logger)
        // Under the lock: whether another run got here first, and whether anything new is old enough.
        let pending = try await connection.query(
            """
            SELECT h.compacted_until < \(horizon)::bigint AND EXISTS (
                SELECT 1 FROM sync.changes c WHERE c.user_id = h.user_id AND c.app_id = h.app_id
                    AND c.cursor > h.compacted_until AND c.cursor <= \(horizon)::bigint)
            FROM sync.heads h WHERE h.user_id = \(userID)::text AND h.app_id = \(appID)::text
            """, logger: logger)
        var worthIt = false
        for try await value in pending.decode(Bool.self) { worthIt = value }
        if worthIt {
            let rows = try await connection.query(
                """
                SELECT c.cursor, c.table_name, c.record_id, c.op, c.op = 'update' AND jsonb_typeof(c.fields) = 'object',
                    f.names, f.stamps
                FROM sync.changes c
                LEFT JOIN LATERAL (
                    SELECT array_agg(e.key) AS names, array_agg(coalesce(e.value->>'at', e.value->>'updatedAt', '')) AS stamps
                    FROM jsonb_each(CASE WHEN c.op = 'update' AND jsonb_typeof(c.fields) = 'object' THEN c.fields END) AS e
                ) f ON true
                WHERE c.user_id = \(userID)::text AND c.app_id = \(appID)::text AND c.cursor <= \(horizon)::bigint
                ORDER BY c.table_name, c.record_id, c.cursor
                """, logger: logger)
            var record: (table: String, id: String)?
            var planner = HistoryFold.Planner()
            var batch = Batch()
            for try await (cursor, table, id, op, isObject, names, stamps) in rows.decode(
                (Int64, String, String, String, Bool, [String]?, [String]?).self)
            {
                if record?.table != table || record?.id != id {
                    if record != nil { outcome += try await plan(&planner, into: &batch, userID: userID, appID: appID, horizon: horizon) }
                    record = (table, id)
                }
                let operation = Change.Operation(rawValue: op) ?? .update
                let fields = isObject ? zip(names ?? [], stamps ?? []).map { HistoryFold.Field(name: $0.0, stamp: $0.1) } : nil
                planner.add(HistoryFold.Row(cursor: cursor, op: operation, fields: fields))
            }
            if record != nil { outcome += try await plan(&planner, into: &batch, userID: userID, appID: appID, horizon: horizon) }
            if !batch.isEmpty { outcome += try await apply(batch, userID: userID, appID: appID, horizon: horizon) }
            outcome.pairs = 1
        }
        try await client.guardedExecute(
            "SELECT sync.compaction_done(\(userID)::text, \(appID)::text, \(horizon)::bigint)", logger: logger)
        return outcome
    }

    /// Adds a finished record's plan to the batch, and carries out full batches. A record with
    /// more rows than a batch takes several: its folded update goes with the first, so each
    /// committed state is still a log a client may pull from.
    private func plan(
        _ planner: inout HistoryFold.Planner, into batch: inout Batch, userID: String, appID: String, horizon: Int64
    ) async throws -> Outcome {
        var outcome = Outcome()
        if let plan = planner.finish() { batch.add(plan) } else { outcome.recordsSkipped = 1 }
        while batch.remove.count >= batchRows {
            var full = batch
            full.remove = Array(batch.remove.prefix(batchRows))
            outcome += try await apply(full, userID: userID, appID: appID, horizon: horizon)
            batch = Batch(remove: Array(batch.remove.dropFirst(batchRows)))
        }
        return outcome
    }

    private func apply(_ batch: Batch, userID: String, appID: String, horizon: Int64) async throws -> Outcome {
        try await client.withGuardedConnection { [logger] connection in
            let rows = try await connection.query(
                """
                SELECT rewritten, removed FROM sync.compact_apply(\(userID)::text, \(appID)::text, \(horizon)::bigint,
                    \(batch.targets)::bigint[], \(batch.names)::text[], \(batch.sources)::bigint[], \(batch.remove)::bigint[])
                """, logger: logger)
            var outcome = Outcome()
            for try await (rewritten, removed) in rows.decode((Int, Int).self) {
                outcome.rowsFolded = rewritten
                outcome.rowsRemoved = removed
            }
            return outcome
        }
    }
}

/// What compaction did since the process started, for `/health` (made before the chassis,
/// filled by the compactor).
final class CompactionStatus: Sendable {
    struct Totals: Sendable {
        var lastRun: Int64?
        var rowsFolded = 0
        var rowsRemoved = 0
        var tableBytes: Int64?
    }

    private let totals = Mutex(Totals())

    init() {}

    var current: Totals { totals.withLock { $0 } }

    func record(_ outcome: Compactor.Outcome, tableBytes: Int64, at finish: Int64) {
        totals.withLock {
            $0.lastRun = finish
            $0.rowsFolded += outcome.rowsFolded
            $0.rowsRemoved += outcome.rowsRemoved
            $0.tableBytes = tableBytes
        }
    }

    /// `/health`'s `compaction` member: totals since start; `lastRun` and `tableBytes` null
    /// before the first run.
    var healthDetails: JSONValue {
        let totals = current
        return [
            "lastRun": totals.lastRun.map { .string(Timestamp.format(microseconds: $0, fractionDigits: 3)) } ?? .null,
            "rowsFolded": .number(Double(totals.rowsFolded)),
            "rowsRemoved": .number(Double(totals.rowsRemoved)),
            "tableBytes": totals.tableBytes.map { .number(Double($0)) } ?? .null,
        ]
    }
}
