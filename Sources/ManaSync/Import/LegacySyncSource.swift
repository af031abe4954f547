import HTTPKit
import NIOCore
import Logging
import PostgresNIO

/// The original Go mana-sync database, read in one read-only REPEATABLE READ transaction:
/// every figure of a run (rows, counts, the clock) comes from one snapshot, and nothing is
/// ever written there.
struct LegacySyncSource: Sendable {
    let connection: PostgresConnection
    let logger: Logger

    /// The original's columns in the order of the batch table's COPY.
    static let columns = ["id", "app_id", "table_name", "record_id", "user_id", "op", "data", "field_timestamps", "client_id", "created_at", "space_id"]

    /// Why the original cannot be read as it is.
    /// Opens the read-only snapshot after checking the table exists and this role sees every
    /// user's rows through the forced row-level security. Returns whether `space_id` exists.
    func begin() async throws -> Bool {
        try await connection.query("SET TIME ZONE 'UTC'", logger: logger)
        try await connection.query("SET DateStyle = 'ISO'", logger: logger)
        try await connection.query("SET default_transaction_read_only = on", logger: logger)
        let rows = try await connection.query(
            """
            SELECT to_regclass('public.sync_changes') IS NOT NULL,
                (SELECT rolsuper OR rolbypassrls FROM pg_roles WHERE rolname = current_user),
                current_user::text,
                coalesce((SELECT relrowsecurity FROM pg_class WHERE oid = to_regclass('public.sync_changes')), false),
                EXISTS (SELECT 1 FROM information_schema.columns
                        WHERE table_schema = 'public' AND table_name = 'sync_changes' AND column_name = 'space_id')
            """, logger: logger)
        var facts: (Bool, Bool, String, Bool, Bool) = (false, false, "", false, false)
        for try await row in rows.decode((Bool, Bool, String, Bool, Bool).self) { facts = row }
        let (exists, bypasses, role, rowSecurity, hasSpace) = facts
        guard exists else { throw ImportRefusal(description: "the original database has no table public.sync_changes") }
        if rowSecurity, !bypasses {
            throw ImportRefusal(
                description: """
                    role \(role) cannot read every user's rows of public.sync_changes: its row-level security is forced \
                    (policy sync_changes_user_isolation). Connect --from as a superuser or a role with BYPASSRLS \
                    (ALTER ROLE \(role) BYPASSRLS; it also needs SELECT on public.sync_changes).
                    """)
        }
        try await connection.query("START TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY", logger: logger)
        return hasSpace
    }

    /// Ends the read-only transaction.
    func end() async throws {
        try await connection.query("COMMIT", logger: logger)
    }

    /// The original host's database clock now, in microseconds.
    func clock() async throws -> Int64 {
        try await connection.query("SELECT (extract(epoch FROM clock_timestamp()) * 1000000)::bigint", logger: logger)
            .decode(Int64.self).reduce(0) { $1 }
    }

    /// Rows at or before the resume point, and rows after it.
    func counts(after mark: ImportMark?) async throws -> (upTo: Int, after: Int) {
        let rows = try await connection.query(
            """
            SELECT count(*) FILTER (WHERE (created_at, id) <= (\(mark?.createdAt)::timestamptz, \(mark?.id)::uuid)),
                count(*) FILTER (WHERE \(mark?.createdAt)::timestamptz IS NULL OR (created_at, id) > (\(mark?.createdAt)::timestamptz, \(mark?.id)::uuid))
            FROM public.sync_changes
            """, logger: logger)
        var result = (0, 0)
        for try await (upTo, after) in rows.decode((Int, Int).self) { result = (upTo, after) }
        return result
    }

    /// Every row after `mark` (all rows when nil) in (created_at, id) order, read in batches
    /// of COPY text: ``Batches/next()`` reads the next one (the caller writes the previous one
    /// meanwhile). The rows go from the original's text straight into the COPY text, without
    /// making a String of each column.
    func batches(after mark: ImportMark?, hasSpace: Bool, batchSize: Int) async throws -> Batches {
        // The whole table is sorted once, before the first row: in memory when it fits.
        try await connection.query("SET work_mem = '256MB'", logger: logger)
        let space = hasSpace ? "space_id::text" : "NULL::text"
        let query: PostgresQuery
        if let mark {
            query = """
                SELECT id::text, app_id, table_name, record_id, user_id, op, data::text, field_timestamps::text, client_id,
                    created_at::text, \(unescaped: space)
                FROM public.sync_changes WHERE (created_at, id) > (\(mark.createdAt)::timestamptz, \(mark.id)::uuid)
                ORDER BY created_at, id
                """
        } else {
            query = PostgresQuery(
                unsafeSQL: """
                    SELECT id::text, app_id, table_name, record_id, user_id, op, data::text, field_timestamps::text, client_id,
                        created_at::text, \(space)
                    FROM public.sync_changes ORDER BY created_at, id
                    """)
        }
        let rows = try await connection.query(query, logger: logger)
        return Batches(iterator: rows.makeAsyncIterator(), batchSize: batchSize)
    }

    /// Rows of the original as COPY text, `batchSize` at a time. One reader at a time: a
    /// batch is read by one task while the previous one is written by another, and the next
    /// read starts only after that one ended.
    final class Batches: @unchecked Sendable {
        private var iterator: PostgresRowSequence.AsyncIterator
        private let batchSize: Int
        private var capacity = 1 << 20

        init(iterator: PostgresRowSequence.AsyncIterator, batchSize: Int) {
            self.iterator = iterator
            self.batchSize = batchSize
        }

        /// The next batch, nil after the last row.
        func next() async throws -> Batch? {
            var text = CopyText(capacity: capacity)
            var count = 0
            var lastID: ByteBuffer?
            var lastCreatedAt: ByteBuffer?
            while count < batchSize, let row = try await iterator.next() {
                for cell in row {
                    text.appendColumn(cell.bytes, first: cell.columnIndex == 0)
                    if cell.columnIndex == 0 { lastID = cell.bytes }
                    if cell.columnIndex == 9 { lastCreatedAt = cell.bytes }
                }
                text.endRow()
                count += 1
            }
            guard count > 0, let lastID, let lastCreatedAt else { return nil }
            capacity = max(capacity, text.byteCount + text.byteCount / 8)
            return Batch(
                text: text, count: count,
                last: ImportMark(createdAt: String(buffer: lastCreatedAt), id: String(buffer: lastID)))
        }
    }

    /// Rows in COPY text, and the last one's place in (created_at, id) order.
    struct Batch: Sendable {
        let text: CopyText
        let count: Int
        let last: ImportMark
    }

    /// Rows per (user, app, op) in the snapshot, keyed "user\u{1}app\u{1}op".
    func groupCounts() async throws -> [String: Int] {
        let rows = try await connection.query(
            "SELECT user_id, app_id, op, count(*) FROM public.sync_changes GROUP BY 1, 2, 3", logger: logger)
        var counts: [String: Int] = [:]
        for try await (user, app, op, count) in rows.decode((String, String, String, Int).self) {
            counts["\(user)\u{1}\(app)\u{1}\(op)"] = count
        }
        return counts
    }
}

/// Where a run resumes: the last imported row in (created_at, id) order.
struct ImportMark: Sendable, Equatable {
    let createdAt: String
    let id: String
}
