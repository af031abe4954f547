import Foundation
import HTTPKit
import Logging
import PostgresNIO

/// Our mana-sync database as the import writes it: original rows land verbatim in
/// `legacy_sync.sync_changes` and, transformed, in `sync.changes` with their cursors, the
/// heads and the resume point, all of one batch in one transaction.
struct SyncImportTarget: Sendable {
    let connection: PostgresConnection
    let logger: Logger

    /// The state a run starts from.
    struct State: Sendable {
        var source: String?
        var mark: ImportMark?
        var cutoverCursor: Int64 = 0
        var runs = 0
        var legacyRows = 0
    }

    /// Checks the target is migrated and this role may write every user's rows, takes the
    /// import lock (one import at a time) and sets the session up.
    func prepare() async throws {
        try await connection.query("SET TIME ZONE 'UTC'", logger: logger)
        // Batches are sorted and grouped in memory, and the session's batch table stays in memory.
        try await connection.query("SET work_mem = '256MB'", logger: logger)
        try await connection.query("SET temp_buffers = '256MB'", logger: logger)
        let rows = try await connection.query(
            """
            SELECT to_regclass('sync.changes') IS NOT NULL,
                (SELECT rolsuper OR rolbypassrls FROM pg_roles WHERE rolname = current_user), current_user::text,
                pg_try_advisory_lock(hashtext('mana-sync import'))
            """, logger: logger)
        var facts: (Bool, Bool, String, Bool) = (false, false, "", false)
        for try await row in rows.decode((Bool, Bool, String, Bool).self) { facts = row }
        let (migrated, bypasses, role, locked) = facts
        guard migrated else { throw ImportRefusal(description: "the target has no sync.changes: run `mana-sync migrate` first") }
        guard bypasses else {
            throw ImportRefusal(
                description: """
                    role \(role) of DATABASE_URL cannot write every user's rows of sync.changes and sync.heads (row-level \
                    security is forced): run the import as the owner with BYPASSRLS (ALTER ROLE \(role) BYPASSRLS) or as a superuser
                    """)
        }
        guard locked else { throw ImportRefusal(description: "another mana-sync import is running against this database") }
    }

    /// Creates the import's tables and the session's batch table; reads the resume point.
    func state() async throws -> State {
        try await SyncImportSchema.create(on: connection, logger: logger)
        try await connection.query(
            """
            CREATE TEMP TABLE IF NOT EXISTS import_batch (
                id uuid, app_id text, table_name text, record_id text, user_id text, op text, data jsonb,
                field_timestamps jsonb, client_id text, created_at timestamptz, space_id text)
            """, logger: logger)
        var state = State()
        let rows = try await connection.query(
            """
            SELECT source, last_created_at::text, last_id::text, cutover_cursor, runs,
                (SELECT count(*) FROM legacy_sync.sync_changes)::bigint
            FROM legacy_sync.import_state
            """, logger: logger)
        for try await (source, createdAt, id, cutover, runs, legacyRows) in rows.decode(
            (String, String?, String?, Int64, Int, Int64).self)
        {
            state.source = source
            if let createdAt, let id { state.mark = ImportMark(createdAt: createdAt, id: id) }
            state.cutoverCursor = cutover
            state.runs = runs
            state.legacyRows = Int(legacyRows)
        }
        return state
    }

    /// How long each part of the writes took over a run, in seconds.
    struct Timings: Sendable {
        var copy = 0.0
        var legacy = 0.0
        var changes = 0.0
    }

    /// Writes one batch (rows in (created_at, id) order) and moves the resume point to its
    /// last row. With `mayHaveRows` (the run reads rows again from the start) rows already
    /// imported are skipped; otherwise every row is new (it lies after the resume point that
    /// committed with the rows before it), and a row imported twice fails the batch. A row at
    /// or before `previousMark` committed late in the original and is marked so. Returns the
    /// rows written.
    func write(
        _ batch: LegacySyncSource.Batch, source: String, previousMark: ImportMark?, mayHaveRows: Bool, cutover: Int64,
        timings: inout Timings
    ) async throws -> Int {
        var started = ContinuousClock.now
        func lap(_ phase: inout Double) {
            let now = ContinuousClock.now
            phase += (now - started).inSeconds
            started = now
        }
        let buffer = batch.text.buffer
        try await connection.query("TRUNCATE import_batch", logger: logger)
        try await connection.copyFrom(table: "import_batch", columns: LegacySyncSource.columns, logger: logger) { writer in
            try await writer.write(buffer)
        }
        if mayHaveRows {
            try await connection.query(
                "DELETE FROM import_batch b USING legacy_sync.sync_changes l WHERE l.id = b.id", logger: logger)
        }
        lap(&timings.copy)
        // The verbatim copy: one plain INSERT (no conflict arbitration: no row of the batch is there).
        try await connection.query(
            """
            INSERT INTO legacy_sync.sync_changes
                (id, app_id, table_name, record_id, user_id, op, data, field_timestamps, client_id, created_at, space_id, late)
            SELECT b.id, b.app_id, b.table_name, b.record_id, b.user_id, b.op, b.data, b.field_timestamps, b.client_id,
                b.created_at, b.space_id,
                coalesce((b.created_at, b.id) <= (\(previousMark?.createdAt)::timestamptz, \(previousMark?.id)::uuid), false)
            FROM import_batch b
            """, logger: logger)
        lap(&timings.legacy)
        let rows = try await connection.query(
            """
            WITH previous AS MATERIALIZED (
                -- The last cursor of each (user, app) of the batch before it: looked up once a pair, and
                -- only for pairs with a head (every change's pair has one: a push and a batch write it
                -- with the change; the checks verify it).
                SELECT k.user_id, k.app_id,
                    CASE WHEN h.user_id IS NULL THEN 0 ELSE coalesce(
                        (SELECT max(c.cursor) FROM sync.changes c WHERE c.user_id = k.user_id AND c.app_id = k.app_id), 0) END AS cursor
                FROM (SELECT DISTINCT user_id, app_id FROM import_batch) k
                    LEFT JOIN sync.heads h ON h.user_id = k.user_id AND h.app_id = k.app_id
            ),
            numbered AS (
                SELECT b.*, (extract(epoch FROM b.created_at) * 1000000)::bigint AS micros,
                    row_number() OVER (PARTITION BY b.user_id, b.app_id ORDER BY b.created_at, b.id) AS n
                FROM import_batch b
            ),
            placed AS (
                -- cursor = max(µs of created_at, previous cursor + 1), in closed form over the batch.
                SELECT n.*, n.n + greatest(p.cursor, max(n.micros - n.n) OVER (
                    PARTITION BY n.user_id, n.app_id ORDER BY n.created_at, n.id ROWS UNBOUNDED PRECEDING)) AS cursor
                FROM numbered n JOIN previous p USING (user_id, app_id)
            ),
            inserted AS (
                -- In key order: each (user, app)'s rows go to the same places of both indexes.
                INSERT INTO sync.changes
                    (user_id, app_id, cursor, table_name, record_id, op, data, fields, deleted_at, client_id, received_at, event_id, extra)
                SELECT user_id, app_id, cursor, table_name, record_id, op,
                    \(unescaped: SyncImportMapping.data), \(unescaped: SyncImportMapping.fields), \(unescaped: SyncImportMapping.deletedAt),
                    client_id, created_at, id, \(unescaped: SyncImportMapping.extra)
                FROM placed
                ORDER BY user_id, app_id, cursor
                RETURNING user_id, app_id, cursor
            ),
            tops AS (
                SELECT user_id, app_id, greatest(max(cursor), \(cutover)) AS cursor FROM inserted GROUP BY user_id, app_id
            ),
            heads AS (
                -- Only heads that must move: a head at or above its new cursor is not even locked.
                INSERT INTO sync.heads (user_id, app_id, last_cursor)
                SELECT t.user_id, t.app_id, t.cursor FROM tops t
                WHERE NOT EXISTS (
                    SELECT 1 FROM sync.heads h WHERE h.user_id = t.user_id AND h.app_id = t.app_id AND h.last_cursor >= t.cursor)
                ON CONFLICT (user_id, app_id) DO UPDATE SET last_cursor = excluded.last_cursor
                    WHERE sync.heads.last_cursor < excluded.last_cursor
                RETURNING 1
            )
            SELECT (SELECT count(*) FROM inserted)::bigint, (SELECT count(*) FROM heads)::bigint
            """, logger: logger)
        var written: Int64 = 0
        for try await (count, _) in rows.decode((Int64, Int64).self) { written = count }
        let last = batch.last
        try await connection.query(
            """
            INSERT INTO legacy_sync.import_state AS s (source, last_created_at, last_id, cutover_cursor)
            VALUES (\(source), \(last.createdAt)::timestamptz, \(last.id)::uuid, \(cutover))
            ON CONFLICT (singleton) DO UPDATE SET
                last_created_at = CASE WHEN s.last_created_at IS NULL
                    OR (excluded.last_created_at, excluded.last_id) > (s.last_created_at, s.last_id)
                    THEN excluded.last_created_at ELSE s.last_created_at END,
                last_id = CASE WHEN s.last_created_at IS NULL
                    OR (excluded.last_created_at, excluded.last_id) > (s.last_created_at, s.last_id)
                    THEN excluded.last_id ELSE s.last_id END,
                cutover_cursor = greatest(s.cutover_cursor, excluded.cutover_cursor), updated_at = now()
            """, logger: logger)
        lap(&timings.changes)
        return Int(written)
    }

    /// Raises every head to the cut-over cursor (new pushes are then above every cursor the
    /// original can have handed out), counts the run, and returns the heads raised.
    func finish(source: String, cutover: Int64) async throws -> Int {
        let raised = try await connection.query(
            """
            WITH raised AS (UPDATE sync.heads SET last_cursor = \(cutover) WHERE last_cursor < \(cutover) RETURNING 1)
            SELECT count(*)::bigint FROM raised
            """, logger: logger
        ).decode(Int64.self).reduce(0) { $1 }
        try await connection.query(
            """
            INSERT INTO legacy_sync.import_state AS s (source, cutover_cursor, runs) VALUES (\(source), \(cutover), 1)
            ON CONFLICT (singleton) DO UPDATE SET runs = s.runs + 1,
                cutover_cursor = greatest(s.cutover_cursor, excluded.cutover_cursor), updated_at = now()
            """, logger: logger)
        return Int(raised)
    }

    /// Records a run and its report.
    func record(_ report: ImportReport) async throws {
        try await ImportRuns.record(report, schema: "legacy_sync", on: connection, logger: logger)
    }
}
