import HTTPKit
import Logging
import NIOCore
import PostgresNIO

/// Where each imported change goes: its cursor is the µs of its `created_at`, or one above the
/// last cursor of its (user, app) when that is not below (ties, rows that committed late), so
/// cursors stay unique and increasing in the original's (created_at, id) order:
/// `cursor = max(µs, previous + 1)`, as a push hands them out.
///
/// The placing stage of the import: ``next()`` reads the next batch of the original and turns
/// it into COPY text for both tables in this process, while our server stores the previous
/// one. Each (user, app)'s last cursor and head stay in memory for the run, loaded once at
/// its start (the import holds the import lock, and its writes are the only ones to these
/// pairs before the cut-over); a pair without a head has no changes.
final class Placement: @unchecked Sendable {  // one caller at a time, like `Batches`
    struct Pair: Hashable, Sendable {
        let user: String
        let app: String
    }

    private struct Known: Sendable {
        var cursor: Int64 = 0
        var head: Int64 = 0
        /// The batch that last placed a row of this pair, and the pair's number in it.
        var batch = -1
        var number = 0
    }

    /// One batch placed: COPY text for both tables, and the heads that move.
    struct Placed: Sendable {
        var legacy: CopyText
        var changes: CopyText
        /// Rows read, and rows placed (read but not imported before).
        var read = 0
        var count = 0
        var heads: (users: [String], apps: [String], cursors: [Int64]) = ([], [], [])
        var last: ImportMark
    }

    /// The columns of `sync.changes` in the order of ``Placed/changes``.
    static let changeColumns = [
        "user_id", "app_id", "cursor", "table_name", "record_id", "op", "data", "fields", "deleted_at", "client_id", "received_at",
        "event_id", "extra",
    ]

    typealias Column = LegacySyncSource.Column

    private let batches: LegacySyncSource.Batches
    private let cutover: Int64
    private let imported: (@Sendable (LegacySyncSource.Batch) async throws -> Set<String>)?
    private var known: [Pair: Known]
    /// The COPY text of the last batch, to size the next one's buffers.
    private var capacity = 1 << 20
    /// The batches placed so far.
    private var batchNumber = 0
    /// Seconds spent placing, over the run.
    private(set) var seconds = 0.0

    /// `imported`, for a run that reads rows again from the start: the ids of a batch's rows
    /// that an earlier run imported, which are left out.
    private init(
        batches: LegacySyncSource.Batches, known: [Pair: Known], cutover: Int64,
        imported: (@Sendable (LegacySyncSource.Batch) async throws -> Set<String>)?
    ) {
        self.batches = batches
        self.known = known
        self.cutover = cutover
        self.imported = imported
    }

    /// Loads every (user, app)'s head and last cursor from the target.
    static func start(
        batches: LegacySyncSource.Batches, cutover: Int64, target: PostgresConnection, logger: Logger,
        imported: (@Sendable (LegacySyncSource.Batch) async throws -> Set<String>)?
    ) async throws -> Placement {
        var known: [Pair: Known] = [:]
        let rows = try await target.query(
            """
            SELECT h.user_id, h.app_id, h.last_cursor,
                coalesce((SELECT max(c.cursor) FROM sync.changes c WHERE c.user_id = h.user_id AND c.app_id = h.app_id), 0)
            FROM sync.heads h
            """, logger: logger)
        for try await (user, app, head, cursor) in rows.decode((String, String, Int64, Int64).self) {
            known[Pair(user: user, app: app)] = Known(cursor: cursor, head: head)
        }
        return Placement(batches: batches, known: known, cutover: cutover, imported: imported)
    }

    /// The next batch placed, nil after the last row. Rows are placed as they arrive, and none
    /// is kept: a row read with PostgresNIO holds on to the whole buffer it arrived in (at
    /// 100,000 rows a batch, keeping the rows until the batch was read took the process to
    /// 348 MB; placing them as they arrive, to the figure in docs/benchmarks.md). A run that
    /// leaves out rows imported before reads the batch first, to look its ids up.
    func next() async throws -> Placed? {
        let started = ContinuousClock.now
        defer { seconds += (ContinuousClock.now - started).inSeconds }
        // The hot loop works on locals: a class's stored property is checked for exclusive
        // access at every use.
        var known: [Pair: Known] = [:]
        swap(&known, &self.known)
        defer { swap(&known, &self.known) }
        batchNumber += 1
        var builder = Builder(capacity: capacity, rows: batches.size, batch: batchNumber)
        if let imported {
            guard let batch = try await batches.next() else { return nil }
            let skipping = try await imported(batch)
            for row in batch.rows { builder.add(row, skipping: skipping, known: &known) }
        } else {
            while builder.read < batches.size, let row = try await batches.nextRow() { builder.add(row, skipping: [], known: &known) }
        }
        guard let placed = builder.finish(cutover: cutover, known: &known) else { return nil }
        let largest = max(placed.legacy.byteCount, placed.changes.byteCount)
        capacity = max(capacity, largest + largest / 8)
        return placed
    }

    /// One batch being placed: the verbatim copy in read order, the changes in key order (each
    /// pair's rows go to the same places of both indexes), and every head of the batch at the
    /// greater of its last cursor and the cut-over where it is below that.
    private struct Builder {
        let batch: Int
        var legacy: CopyText
        /// Change rows in read order, copied in key order at the end.
        var scratch: CopyText
        var order: [Pair] = []
        var rows: [(pair: Int, cursor: Int64, start: Int, end: Int)] = []
        var cells: [ByteBuffer?] = []
        var read = 0
        /// The last row read (placed or not): where the batch ends.
        var lastRow: PostgresRow?

        init(capacity: Int, rows: Int, batch: Int) {
            self.batch = batch
            legacy = CopyText(capacity: capacity)
            scratch = CopyText(capacity: capacity)
            self.rows.reserveCapacity(rows)
        }

        mutating func add(_ row: PostgresRow, skipping: Set<String>, known: inout [Pair: Known]) {
            read += 1
            cells.removeAll(keepingCapacity: true)
            for cell in row { cells.append(cell.bytes) }
            lastRow = row
            if !skipping.isEmpty, let id = cells[Column.id], skipping.contains(String(buffer: id)) { return }
            for column in Column.legacy { legacy.appendColumn(cells[column], first: column == 0) }
            legacy.endRow()

            let pair = Pair(
                user: cells[Column.userID].map { String(buffer: $0) } ?? "", app: cells[Column.appID].map { String(buffer: $0) } ?? "")
            let micros = cells[Column.micros].flatMap { $0.getInteger(at: $0.readerIndex, as: Int64.self) } ?? 0
            // One lookup a row: the pair's cursor moves, and it is numbered on its first row of the batch.
            let (cursor, number, isNew) = Placement.advance(&known[pair, default: Known()], to: micros, batch: batch, next: order.count)
            if isNew { order.append(pair) }

            let start = scratch.byteCount
            let keepsData = cells[Column.keepsData].flatMap { $0.getInteger(at: $0.readerIndex, as: UInt8.self) } == 1
            scratch.appendColumn(cells[Column.userID], first: true)
            scratch.appendColumn(cells[Column.appID], first: false)
            scratch.appendColumn(cursor)
            for column in Placement.beforeData { scratch.appendColumn(cells[column], first: false) }
            scratch.appendColumn(keepsData ? cells[Column.data] : nil, first: false)
            for column in Placement.afterData { scratch.appendColumn(cells[column], first: false) }
            scratch.endRow()
            rows.append((number, cursor, start, scratch.byteCount))
        }

        /// The batch placed; nil when no row was read.
        mutating func finish(cutover: Int64, known: inout [Pair: Known]) -> Placed? {
            guard let lastRow else { return nil }
            var placed = Placed(legacy: legacy, changes: CopyText(capacity: scratch.byteCount), read: read, last: ImportMark(lastRow))
            for pair in order {
                guard var state = known[pair] else { continue }
                let top = max(state.cursor, cutover)
                guard top > state.head else { continue }
                state.head = top
                known[pair] = state
                placed.heads.users.append(pair.user)
                placed.heads.apps.append(pair.app)
                placed.heads.cursors.append(top)
            }
            var rank = [Int](repeating: 0, count: order.count)
            let sorted = order.indices.sorted { (order[$0].user, order[$0].app) < (order[$1].user, order[$1].app) }
            for (position, number) in sorted.enumerated() { rank[number] = position }
            rows.sort { (rank[$0.pair], $0.cursor) < (rank[$1.pair], $1.cursor) }
            for row in rows { placed.changes.append(bytesOf: scratch, from: row.start, to: row.end) }
            placed.count = rows.count
            return placed
        }
    }

    /// Gives the pair's next cursor: `max(µs, previous + 1)`; numbers the pair `next` when this
    /// is its first row in `batch`. Returns the cursor, the pair's number, and whether it is new.
    private static func advance(_ state: inout Known, to micros: Int64, batch: Int, next: Int) -> (Int64, Int, Bool) {
        state.cursor = max(micros, state.cursor + 1)
        guard state.batch != batch else { return (state.cursor, state.number, false) }
        state.batch = batch
        state.number = next
        return (state.cursor, next, true)
    }

    /// The source columns of ``changeColumns`` around `cursor` and `data`.
    private static let beforeData = [Column.tableName, Column.recordID, Column.op]
    private static let afterData = [Column.fields, Column.deletedAt, Column.clientID, Column.createdAt, Column.id, Column.extra]
}
