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

    /// Every row after `mark` (all rows when nil) in (created_at, id) order, in batches of
    /// `batchSize`: ``Batches/next()`` reads the next one (the caller writes the previous one
    /// meanwhile). Each row carries the original's columns as text for the verbatim copy,
    /// whether it is at or before `lateUpTo` (it committed late), and, computed by the
    /// original's server so that our busy server does not have to, its place and its
    /// `sync.changes` columns (``Column``). No String is made of any column.
    func batches(after mark: ImportMark?, lateUpTo: ImportMark?, hasSpace: Bool, batchSize: Int) async throws -> Batches {
        // The whole table is sorted once, before the first row: in memory when it fits.
        try await connection.query("SET work_mem = '256MB'", logger: logger)
        let space = hasSpace ? "space_id" : "NULL::text"
        let extra = hasSpace ? SyncImportMapping.extra : "NULL::jsonb"
        var query: PostgresQuery = """
            SELECT id::text, app_id, table_name, record_id, user_id, op, data::text, field_timestamps::text, client_id,
                created_at::text, \(unescaped: space),
                coalesce((created_at, id) <= (\(lateUpTo?.createdAt)::timestamptz, \(lateUpTo?.id)::uuid), false)::text,
                \(unescaped: Self.micros),
                \(unescaped: SyncImportMapping.data) IS NOT NULL,
                (\(unescaped: SyncImportMapping.fields))::text, \(unescaped: SyncImportMapping.deletedAt), (\(unescaped: extra))::text
            FROM public.sync_changes
            """
        if let mark {
            query.sql += " WHERE (created_at, id) > ($\(query.binds.count + 1)::timestamptz, $\(query.binds.count + 2)::uuid)"
            query.binds.append(mark.createdAt)
            query.binds.append(mark.id)
        }
        query.sql += " ORDER BY created_at, id"
        let rows = try await connection.query(query, logger: logger)
        return Batches(iterator: rows.makeAsyncIterator(), batchSize: batchSize)
    }

    /// Microseconds since the epoch of `created_at`, exact on every PostgreSQL version (before
    /// 14 `extract` answers a double).
    static let micros = """
        extract(epoch FROM date_trunc('second', created_at))::bigint * 1000000
            + extract(microseconds FROM created_at)::bigint % 1000000
        """

    /// The columns of a row of ``Batch/rows``.
    enum Column {
        /// The original's columns as text, in the order of ``legacyColumns``: 0 ..< 12.
        static let legacy = 0..<12
        static let id = 0, appID = 1, tableName = 2, recordID = 3, userID = 4, op = 5, data = 6, clientID = 8, createdAt = 9
        /// `bigint`: µs of `created_at`.
        static let micros = 12
        /// `bool`: `data` is the change's `data` (an insert of something other than JSON null).
        static let keepsData = 13
        /// Text: the change's `fields`, `deleted_at` and `extra` (``SyncImportMapping``).
        static let fields = 14, deletedAt = 15, extra = 16
    }

    /// The columns of `legacy_sync.sync_changes` that the verbatim copy writes.
    static let legacyColumns = [
        "id", "app_id", "table_name", "record_id", "user_id", "op", "data", "field_timestamps", "client_id", "created_at", "space_id", "late",
    ]

    /// Rows of the original, `batchSize` at a time. One reader at a time: a batch is read by
    /// one task while the previous one is written by another, and the next read starts only
    /// after that one ended.
    final class Batches: @unchecked Sendable {
        private var iterator: PostgresRowSequence.AsyncIterator
        private let batchSize: Int

        init(iterator: PostgresRowSequence.AsyncIterator, batchSize: Int) {
            self.iterator = iterator
            self.batchSize = batchSize
        }

        /// The next row, nil after the last one.
        func nextRow() async throws -> PostgresRow? {
            try await iterator.next()
        }

        /// The next `batchSize` rows, nil after the last row.
        func next() async throws -> Batch? {
            var rows: [PostgresRow] = []
            rows.reserveCapacity(batchSize)
            while rows.count < batchSize, let row = try await iterator.next() { rows.append(row) }
            return rows.isEmpty ? nil : Batch(rows: rows)
        }

        var size: Int { batchSize }
    }

    /// Rows in (created_at, id) order (their columns: ``Column``).
    struct Batch: Sendable {
        let rows: [PostgresRow]
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

extension ImportMark {
    /// The place of a row of ``LegacySyncSource/Batches``.
    init(_ row: PostgresRow) {
        var id = "", createdAt = ""
        for cell in row {
            if cell.columnIndex == LegacySyncSource.Column.id { id = cell.bytes.map { String(buffer: $0) } ?? "" }
            if cell.columnIndex == LegacySyncSource.Column.createdAt { createdAt = cell.bytes.map { String(buffer: $0) } ?? "" }
        }
        self.init(createdAt: createdAt, id: id)
    }
}
