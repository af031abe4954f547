import HTTPKit
import Logging
import PostgresNIO

/// The original Go mana-sync database, read in one read-only REPEATABLE READ transaction:
/// every figure of a run (rows, counts, the clock) comes from one snapshot, and nothing is
/// ever written there.
struct LegacySyncSource: Sendable {
    let connection: PostgresConnection
    let logger: Logger

    /// One original row, as text in the shape COPY wants it.
    struct Row: Sendable {
        let id: String
        let appID: String
        let table: String
        let recordID: String
        let userID: String
        let op: String
        let data: String?
        let fieldTimestamps: String?
        let clientID: String
        let createdAt: String
        let spaceID: String?

        var copyColumns: [String?] {
            [id, appID, table, recordID, userID, op, data, fieldTimestamps, clientID, createdAt, spaceID]
        }
    }

    /// Why the original cannot be read as it is.
    struct Refusal: Error, CustomStringConvertible {
        let description: String
    }

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
        guard exists else { throw Refusal(description: "the original database has no table public.sync_changes") }
        if rowSecurity, !bypasses {
            throw Refusal(
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

    /// Every row after `mark` (all rows when nil) in (created_at, id) order, in batches.
    func rows(after mark: ImportMark?, hasSpace: Bool, batchSize: Int, _ body: ([Row]) async throws -> Void) async throws {
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
        var batch: [Row] = []
        batch.reserveCapacity(batchSize)
        for try await (id, app, table, record, user, op, data, timestamps, client, created, spaceID) in rows.decode(
            (String, String, String, String, String, String, String?, String?, String, String, String?).self)
        {
            batch.append(
                Row(
                    id: id, appID: app, table: table, recordID: record, userID: user, op: op, data: data,
                    fieldTimestamps: timestamps, clientID: client, createdAt: created, spaceID: spaceID))
            if batch.count == batchSize {
                try await body(batch)
                batch.removeAll(keepingCapacity: true)
            }
        }
        if !batch.isEmpty { try await body(batch) }
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
