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
        // The checks after the copy sort and group in memory.
        try await connection.query("SET work_mem = '256MB'", logger: logger)
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

    /// Creates the import's tables; reads the resume point.
    func state() async throws -> State {
        try await SyncImportSchema.create(on: connection, logger: logger)
        try await dropRowsAhead()
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

    /// With a second connection a batch's verbatim copy commits just before its changes (see
    /// ``write(_:source:cutover:legacy:timings:)``): rows of a run killed between the two
    /// commits lie after the resume point, and go (they are read and copied again).
    private func dropRowsAhead() async throws {
        let mark = """
            WITH mark AS (
                SELECT coalesce((SELECT last_created_at FROM legacy_sync.import_state), '-infinity') AS at,
                    coalesce((SELECT last_id FROM legacy_sync.import_state), '00000000-0000-0000-0000-000000000000') AS id)
            """
        let ahead = try await connection.query(
            PostgresQuery(
                unsafeSQL: mark
                    + " SELECT EXISTS (SELECT 1 FROM legacy_sync.import_ahead a, mark WHERE (a.last_created_at, a.last_id) > (mark.at, mark.id))"),
            logger: logger
        ).decode(Bool.self).reduce(false) { $1 }
        guard ahead else { return }
        try await connection.query(
            PostgresQuery(
                unsafeSQL: mark + " DELETE FROM legacy_sync.sync_changes l USING mark WHERE (l.created_at, l.id) > (mark.at, mark.id)"),
            logger: logger)
        try await connection.query("DELETE FROM legacy_sync.import_ahead", logger: logger)
    }

    /// The tables a first load fills without their indexes.
    static let deferrable = ["sync.changes", "legacy_sync.sync_changes"]

    /// Drops the indexes of each of `tables` that is empty, recording how to build them
    /// again (``buildDeferredIndexes(on:)``): a B-tree built once from 1,000,000 rows takes a
    /// fraction of what inserting them one by one into it does (docs/benchmarks.md). The
    /// drop commits before the load (without `inTransaction`), so a run killed during the load
    /// leaves the record behind and the next run builds what it names.
    func deferIndexes(ofEmpty tables: [String], inTransaction: Bool) async throws {
        var drops: [String] = []
        if !inTransaction { try await connection.query("BEGIN", logger: logger) }
        for table in tables {
            let empty = try await connection.query(
                PostgresQuery(unsafeSQL: "SELECT NOT EXISTS (SELECT 1 FROM \(table))"), logger: logger
            ).decode(Bool.self).reduce(false) { $1 }
            guard empty else { continue }
            let rows = try await connection.query(
                """
                INSERT INTO legacy_sync.deferred_indexes (table_name, index_name, create_statement, constraint_statement)
                SELECT \(table), i.relname, pg_get_indexdef(i.oid),
                    CASE c.contype WHEN 'p' THEN format('ALTER TABLE %s ADD CONSTRAINT %I PRIMARY KEY USING INDEX %I', x.indrelid::regclass, c.conname, i.relname)
                        WHEN 'u' THEN format('ALTER TABLE %s ADD CONSTRAINT %I UNIQUE USING INDEX %I', x.indrelid::regclass, c.conname, i.relname) END
                FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid
                    LEFT JOIN pg_constraint c ON c.conindid = x.indexrelid AND c.conrelid = x.indrelid AND c.contype IN ('p', 'u')
                WHERE x.indrelid = \(table)::regclass
                RETURNING CASE WHEN constraint_statement IS NOT NULL
                    THEN format('ALTER TABLE %s DROP CONSTRAINT %I', \(table)::regclass, index_name)
                    ELSE format('DROP INDEX %I.%I', split_part(\(table), '.', 1), index_name) END
                """, logger: logger)
            for try await drop in rows.decode(String.self) { drops.append(drop) }
        }
        for drop in drops { try await connection.query(PostgresQuery(unsafeSQL: drop), logger: logger) }
        if !inTransaction { try await connection.query("COMMIT", logger: logger) }
        if !drops.isEmpty { logger.info("deferred the indexes of the empty tables to after the load", metadata: ["dropped": "\(drops.count)"]) }
    }

    /// Whether indexes wait to be built.
    func hasDeferredIndexes() async throws -> Bool {
        try await connection.query("SELECT EXISTS (SELECT 1 FROM legacy_sync.deferred_indexes)", logger: logger)
            .decode(Bool.self).reduce(false) { $1 }
    }

    /// Builds every deferred index, spread over `connections` (PostgreSQL builds one index
    /// on one core), each with the removal of its record in one transaction (without
    /// `inTransaction`, where the caller's transaction holds them all).
    func buildDeferredIndexes(on connections: [PostgresConnection], inTransaction: Bool) async throws {
        var statements: [(table: String, index: String, create: String, constraint: String?)] = []
        let rows = try await connection.query(
            """
            SELECT table_name, index_name, create_statement, constraint_statement FROM legacy_sync.deferred_indexes
            ORDER BY table_name, index_name
            """, logger: logger)
        for try await row in rows.decode((String, String, String, String?).self) { statements.append(row) }
        guard !statements.isEmpty else { return }
        let lanes = inTransaction ? [connection] : connections
        let logger = self.logger
        try await withThrowingTaskGroup(of: Void.self) { group in
            for (lane, connection) in lanes.enumerated() {
                let mine = statements.enumerated().filter { $0.offset % lanes.count == lane }.map(\.element)
                group.addTask {
                    try await connection.query("SET maintenance_work_mem = '256MB'", logger: logger)
                    for statement in mine {
                        if !inTransaction { try await connection.query("BEGIN", logger: logger) }
                        // The index alone takes a lock that lets another index of the table be
                        // built at the same time; adopting it as the constraint is quick.
                        try await connection.query(PostgresQuery(unsafeSQL: statement.create), logger: logger)
                        if let constraint = statement.constraint {
                            try await connection.query(PostgresQuery(unsafeSQL: constraint), logger: logger)
                        }
                        try await connection.query(
                            """
                            DELETE FROM legacy_sync.deferred_indexes WHERE table_name = \(statement.table) AND index_name = \(statement.index)
                            """, logger: logger)
                        if !inTransaction { try await connection.query("COMMIT", logger: logger) }
                    }
                }
            }
            try await group.waitForAll()
        }
    }

    /// How long each part of the writes took over a run, in seconds.
    struct Timings: Sendable {
        var legacy = 0.0
        var changes = 0.0
        var heads = 0.0
        var indexes = 0.0
        var waitingForLegacy = 0.0
    }

    /// Writes one placed batch and moves the resume point to its last row (the caller holds
    /// the transaction and commits it). Returns the rows written. Our server only stores: the
    /// original's server computed each change's columns and ``Placement`` gave each its
    /// cursor, so both tables take one COPY each.
    ///
    /// With `legacy`, a second connection of ours, the verbatim copy goes there at the same
    /// time, in its own transaction that commits before this returns (two server processes
    /// store the batch); it records how far it got in `import_ahead`, so that a run killed
    /// before the caller's commit leaves rows the next run recognises (``dropRowsAhead()``).
    func write(
        _ placed: Placement.Placed, source: String, cutover: Int64, legacy: PostgresConnection?, timings: inout Timings
    ) async throws -> Int {
        var started = ContinuousClock.now
        func lap(_ phase: inout Double) {
            let now = ContinuousClock.now
            phase += (now - started).inSeconds
            started = now
        }
        async let legacySeconds = Self.storeLegacy(placed, on: legacy, logger: logger)
        if legacy == nil {
            try await connection.copy(
                placed.legacy, into: "legacy_sync", "sync_changes", columns: LegacySyncSource.legacyColumns, logger: logger)
            lap(&timings.legacy)
        }
        try await connection.copy(placed.changes, into: "sync", "changes", columns: Placement.changeColumns, logger: logger)
        lap(&timings.changes)
        let heads = placed.heads
        if !heads.users.isEmpty {
            // Only heads that move: every other one is at or above its new cursor already.
            try await connection.query(
                """
                INSERT INTO sync.heads (user_id, app_id, last_cursor)
                SELECT * FROM unnest(\(heads.users)::text[], \(heads.apps)::text[], \(heads.cursors)::bigint[])
                ON CONFLICT (user_id, app_id) DO UPDATE SET last_cursor = excluded.last_cursor
                    WHERE sync.heads.last_cursor < excluded.last_cursor
                """, logger: logger)
        }
        let last = placed.last
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
        lap(&timings.heads)
        if legacy != nil {
            timings.legacy += try await legacySeconds
            lap(&timings.waitingForLegacy)
        }
        return placed.count
    }

    /// The verbatim copy of a batch on `connection`, committed there; returns its seconds.
    private static func storeLegacy(_ placed: Placement.Placed, on connection: PostgresConnection?, logger: Logger) async throws -> Double {
        guard let connection else { return 0 }
        let started = ContinuousClock.now
        try await connection.query("BEGIN", logger: logger)
        try await connection.copy(
            placed.legacy, into: "legacy_sync", "sync_changes", columns: LegacySyncSource.legacyColumns, logger: logger)
        try await connection.query(
            """
            INSERT INTO legacy_sync.import_ahead (last_created_at, last_id)
            VALUES (\(placed.last.createdAt)::timestamptz, \(placed.last.id)::uuid)
            ON CONFLICT (singleton) DO UPDATE SET last_created_at = excluded.last_created_at, last_id = excluded.last_id
            """, logger: logger)
        try await connection.query("COMMIT", logger: logger)
        return (ContinuousClock.now - started).inSeconds
    }

    /// The ids of the batch's rows that an earlier run imported.
    func imported(of batch: LegacySyncSource.Batch) async throws -> Set<String> {
        let ids = batch.rows.map { row in
            row.first { $0.columnIndex == LegacySyncSource.Column.id }?.bytes.map { String(buffer: $0) } ?? ""
        }
        var found = Set<String>()
        let rows = try await connection.query(
            "SELECT id::text FROM legacy_sync.sync_changes WHERE id = ANY(\(ids)::uuid[])", logger: logger)
        for try await id in rows.decode(String.self) { found.insert(id) }
        return found
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
