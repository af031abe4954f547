import HTTPKit
import Logging
import NIOCore
import PostgresNIO

/// Where each imported change goes: its cursor is the µs of its `created_at`, or one above the
/// last cursor of its (user, app) when that is not below (ties, rows that committed late), so
/// cursors stay unique and increasing in the original's (created_at, id) order:
/// `cursor = max(µs, previous + 1)`, as a push hands them out.
///
/// Each (user, app)'s last cursor and head stay in memory for the run: looked up once, when
/// the pair first appears (the import holds the import lock, and its writes are the only ones
/// to these pairs before the cut-over).
struct Placement: Sendable {
    struct Pair: Hashable, Sendable {
        let user: String
        let app: String
    }

    private struct Known: Sendable {
        var cursor: Int64
        var head: Int64
    }

    private var known: [Pair: Known] = [:]
    /// The COPY text of the last batch, to size the next one's buffers.
    private var capacity = 1 << 20

    /// The columns of `sync.changes` in the order of ``Text/changes``.
    static let changeColumns = [
        "user_id", "app_id", "cursor", "table_name", "record_id", "op", "data", "fields", "deleted_at", "client_id", "received_at",
        "event_id", "extra",
    ]

    /// One batch placed: COPY text for both tables, and the heads that move.
    struct Text: Sendable {
        var legacy: CopyText
        var changes: CopyText
        var count = 0
        var heads: (users: [String], apps: [String], cursors: [Int64]) = ([], [], [])
    }

    typealias Column = LegacySyncSource.Column

    /// The (user, app) of each row.
    static func pairs(of batch: LegacySyncSource.Batch) -> [Pair] {
        batch.rows.map { row in
            var user = "", app = ""
            for cell in row {
                if cell.columnIndex == Column.userID { user = cell.bytes.map { String(buffer: $0) } ?? "" }
                if cell.columnIndex == Column.appID { app = cell.bytes.map { String(buffer: $0) } ?? "" }
                if cell.columnIndex > Column.userID { break }
            }
            return Pair(user: user, app: app)
        }
    }

    /// Looks up the last cursor and the head of each pair not seen before in this run, in one
    /// statement. A pair without a head has no changes (a push and an import write both).
    mutating func learn(_ pairs: [Pair], connection: PostgresConnection, logger: Logger) async throws {
        var users: [String] = []
        var apps: [String] = []
        var asked = Set<Pair>()
        for pair in pairs where known[pair] == nil && asked.insert(pair).inserted {
            users.append(pair.user)
            apps.append(pair.app)
        }
        guard !users.isEmpty else { return }
        let rows = try await connection.query(
            """
            SELECT k.user_id, k.app_id, coalesce(h.last_cursor, 0),
                CASE WHEN h.user_id IS NULL THEN 0 ELSE coalesce(
                    (SELECT max(c.cursor) FROM sync.changes c WHERE c.user_id = k.user_id AND c.app_id = k.app_id), 0) END
            FROM unnest(\(users)::text[], \(apps)::text[]) AS k(user_id, app_id)
                LEFT JOIN sync.heads h ON h.user_id = k.user_id AND h.app_id = k.app_id
            """, logger: logger)
        for try await (user, app, head, cursor) in rows.decode((String, String, Int64, Int64).self) {
            known[Pair(user: user, app: app)] = Known(cursor: cursor, head: head)
        }
    }

    /// Places the batch's rows (``learn(_:connection:logger:)`` first), leaving out the ids in
    /// `skipping`: the verbatim copy in read order, the changes in key order (each pair's rows
    /// go to the same places of both indexes), and every head of the batch at the greater of
    /// its last cursor and `cutover` where it is below that.
    mutating func place(_ batch: LegacySyncSource.Batch, pairs: [Pair], skipping: Set<String>, cutover: Int64) -> Text {
        var text = Text(legacy: CopyText(capacity: capacity), changes: CopyText(capacity: capacity))
        var order: [Pair] = []
        var slot: [Pair: Int] = [:]
        var placed: [(pair: Int, cursor: Int64, row: Int)] = []
        placed.reserveCapacity(batch.count)
        var cells: [ByteBuffer?] = []
        for (index, row) in batch.rows.enumerated() {
            Self.read(row, into: &cells)
            if !skipping.isEmpty, let id = cells[Column.id], skipping.contains(String(buffer: id)) { continue }
            for column in Column.legacy { text.legacy.appendColumn(cells[column], first: column == 0) }
            text.legacy.endRow()
            let pair = pairs[index]
            let micros = cells[Column.micros].flatMap { $0.getInteger(at: $0.readerIndex, as: Int64.self) } ?? 0
            var state = known[pair] ?? Known(cursor: 0, head: 0)
            state.cursor = max(micros, state.cursor + 1)
            known[pair] = state
            let number: Int
            if let existing = slot[pair] {
                number = existing
            } else {
                number = order.count
                slot[pair] = number
                order.append(pair)
            }
            placed.append((number, state.cursor, index))
        }
        for pair in order {
            guard var state = known[pair] else { continue }
            let top = max(state.cursor, cutover)
            guard top > state.head else { continue }
            state.head = top
            known[pair] = state
            text.heads.users.append(pair.user)
            text.heads.apps.append(pair.app)
            text.heads.cursors.append(top)
        }
        var rank = [Int](repeating: 0, count: order.count)
        for (position, number) in order.indices.sorted(by: { (order[$0].user, order[$0].app) < (order[$1].user, order[$1].app) })
            .enumerated()
        {
            rank[number] = position
        }
        placed.sort { (rank[$0.pair], $0.cursor) < (rank[$1.pair], $1.cursor) }
        for entry in placed {
            Self.read(batch.rows[entry.row], into: &cells)
            let keepsData = cells[Column.keepsData].flatMap { $0.getInteger(at: $0.readerIndex, as: UInt8.self) } == 1
            text.changes.appendColumn(cells[Column.userID], first: true)
            text.changes.appendColumn(cells[Column.appID], first: false)
            text.changes.appendColumn(entry.cursor)
            for column in Self.beforeData { text.changes.appendColumn(cells[column], first: false) }
            text.changes.appendColumn(keepsData ? cells[Column.data] : nil, first: false)
            for column in Self.afterData {
                text.changes.appendColumn(cells[column], first: false)
            }
            text.changes.endRow()
        }
        text.count = placed.count
        capacity = max(capacity, text.legacy.byteCount + text.legacy.byteCount / 8)
        return text
    }

    /// The source columns of ``changeColumns`` around `cursor` and `data`.
    private static let beforeData = [Column.tableName, Column.recordID, Column.op]
    private static let afterData = [Column.fields, Column.deletedAt, Column.clientID, Column.createdAt, Column.id, Column.extra]

    private static func read(_ row: PostgresRow, into cells: inout [ByteBuffer?]) {
        cells.removeAll(keepingCapacity: true)
        for cell in row { cells.append(cell.bytes) }
    }
}
