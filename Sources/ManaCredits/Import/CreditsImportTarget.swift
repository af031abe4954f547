import Foundation
import HTTPKit
import Logging
import PostgresNIO

/// Our mana-credits database as the import writes it: a batch of users' original rows is
/// staged with COPY, kept verbatim in `legacy_credits`, and placed in `credits`/`gifts` by
/// the statements of ``CreditsImportMapping``, all in the caller's transaction.
struct CreditsImportTarget: Sendable {
    let connection: PostgresConnection
    let logger: Logger

    /// Where the import stands.
    struct State: Sendable {
        var source: String?
        var runs = 0
        /// Per user: imported or held, and the digest of their original rows then.
        var users: [String: (state: String, digest: String)] = [:]
    }

    /// A batch's decisions, for the staging tables.
    struct Batch: Sendable {
        /// Per table: the users' original rows as COPY text.
        var rows: [String: String] = [:]
        var users: [(id: String, plan: CreditsLedgerPlan, digest: String)] = []
    }

    /// Checks the target is migrated (through the ledger security migration) and takes the
    /// import lock (one import at a time).
    func prepare() async throws {
        try await connection.query("SET TIME ZONE 'UTC'", logger: logger)
        let rows = try await connection.query(
            "SELECT to_regclass('credits.debts') IS NOT NULL, pg_try_advisory_lock(hashtext('mana-credits import'))", logger: logger)
        var facts = (false, false)
        for try await row in rows.decode((Bool, Bool).self) { facts = row }
        guard facts.0 else { throw ImportRefusal(description: "the target is not migrated: run `mana-credits migrate` first") }
        guard facts.1 else { throw ImportRefusal(description: "another mana-credits import is running against this database") }
    }

    /// Creates the import's tables and the session's staging tables; reads where it stands.
    func state() async throws -> State {
        try await CreditsImportSchema.create(on: connection, logger: logger)
        var state = State()
        for try await (source, runs) in try await connection.query(
            "SELECT source, runs FROM legacy_credits.import_state", logger: logger
        ).decode((String, Int).self) {
            state.source = source
            state.runs = runs
        }
        for try await (users, states, digests) in try await connection.query(
            "SELECT coalesce(array_agg(user_id), '{}'), coalesce(array_agg(state), '{}'), coalesce(array_agg(digest), '{}') FROM legacy_credits.users",
            logger: logger
        ).decode(([String], [String], [String]).self) {
            for index in users.indices { state.users[users[index]] = (states[index], digests[index]) }
        }
        return state
    }

    /// The users' transactions already in our ledger, in `seq` order.
    func placed(users: [String]) async throws -> [String: [CreditsLedgerPlan.Placed]] {
        let rows = try await connection.query(
            """
            SELECT coalesce(array_agg(t.user_id ORDER BY t.seq), '{}'), coalesce(array_agg(t.id::text ORDER BY t.seq), '{}'),
                coalesce(array_agg(t.status ORDER BY t.seq), '{}'), coalesce(array_agg(t.amount ORDER BY t.seq), '{}'),
                coalesce(array_agg(t.balance_after ORDER BY t.seq), '{}'),
                coalesce(array_agg(coalesce(t.system_key LIKE 'legacy-import:%', false) ORDER BY t.seq), '{}'),
                coalesce(array_agg(coalesce(l.row_hash::text, '') ORDER BY t.seq), '{}')
            FROM credits.transactions t LEFT JOIN legacy_credits.transactions l ON l.id = t.id
            WHERE t.user_id = ANY(\(users))
            """, logger: logger)
        var result: [String: [CreditsLedgerPlan.Placed]] = [:]
        for try await (owners, ids, statuses, amounts, afters, adjustments, hashes) in rows.decode(
            ([String], [String], [String], [Int64], [Int64], [Bool], [String]).self)
        {
            for index in ids.indices {
                result[owners[index], default: []].append(
                    .init(
                        id: ids[index], status: statuses[index], amount: amounts[index], after: afters[index], isAdjustment: adjustments[index],
                        hash: hashes[index].isEmpty ? nil : hashes[index]))
            }
        }
        return result
    }

    /// Stages `text` (COPY text of original rows) into the staging table of `table`.
    private func stage(_ table: CreditsImportMapping.Table, _ text: String) async throws {
        guard !text.isEmpty else { return }
        var buffer = ByteBufferAllocator().buffer(capacity: text.utf8.count)
        buffer.writeString(text)
        try await connection.copyFrom(table: table.stage, columns: table.columnNames + ["row_hash"], logger: logger) { writer in
            try await writer.write(buffer)
        }
    }

    private func stage(_ name: String, columns: [String], _ rows: [[String?]]) async throws {
        guard !rows.isEmpty else { return }
        var text = CopyText(capacity: rows.count * 200)
        for row in rows { text.append(row) }
        let buffer = text.buffer
        try await connection.copyFrom(table: name, columns: columns, logger: logger) { writer in try await writer.write(buffer) }
    }

    /// Keeps the staged rows of `table` verbatim in legacy_credits (changed rows replaced, except
    /// imported transactions: the copy keeps what our append-only ledger holds, so a change
    /// in the original keeps holding its user back).
    private func keepLegacy(_ table: CreditsImportMapping.Table) async throws {
        let columns = table.columnNames + ["row_hash"]
        let list = columns.joined(separator: ", ")
        let excluded = columns.map { "excluded.\($0)" }.joined(separator: ", ")
        let imported =
            table.name == CreditsImportMapping.transactions.name
            ? " AND NOT EXISTS (SELECT 1 FROM credits.transactions x WHERE x.id = l.id)" : ""
        try await connection.query(
            PostgresQuery(
                unsafeSQL: """
                    INSERT INTO \(table.legacy) AS l (\(list)) SELECT \(list) FROM \(table.stage)
                    ON CONFLICT (\(table.key)) DO UPDATE SET (\(list)) = ROW(\(excluded)) WHERE l.row_hash <> excluded.row_hash\(imported)
                    """), logger: logger)
    }

    private func count(_ sql: String, binds: PostgresBindings = PostgresBindings()) async throws -> Int {
        try await connection.query(PostgresQuery(unsafeSQL: sql, binds: binds), logger: logger).decode(Int64.self).reduce(0) { Int($1) }
    }

    private func emptyStaging() async throws {
        try await connection.query(
            PostgresQuery(unsafeSQL: "TRUNCATE \(CreditsImportSchema.stagingTables.joined(separator: ", "))"), logger: logger)
    }

    /// Keeps every package verbatim and places them. Returns the rows written to ours.
    func writePackages(_ rows: String) async throws -> Int {
        try await emptyStaging()
        try await stage(CreditsImportMapping.packages, rows)
        try await keepLegacy(CreditsImportMapping.packages)
        return try await count(CreditsImportMapping.placePackages)
    }

    /// Writes one batch of users: their original rows verbatim, then everything of the users
    /// whose plan is to import them. Returns the rows written to ours.
    func write(_ batch: Batch, baseURL: String, keepCreatorEmails: Bool) async throws -> Int {
        try await emptyStaging()
        for table in CreditsImportMapping.userTables {
            try await stage(table, batch.rows[table.name] ?? "")
            try await keepLegacy(table)
        }
        try await stage(
            "stage_users", columns: ["user_id", "decision", "reason", "digest", "adjusted"],
            batch.users.map { user -> [String?] in
                let reason: String? = user.plan.reasons.isEmpty ? nil : user.plan.reasons.joined(separator: "; ")
                return [user.id, user.plan.decision.rawValue, reason, user.digest, String(user.plan.adjusted)]
            })
        try await stage(
            "stage_chain", columns: ["id", "pos"],
            batch.users.flatMap { user in user.plan.chain.map { link -> [String?] in [link.id, String(link.position)] } })
        try await stage(
            "stage_adjustments",
            columns: ["user_id", "system_key", "amount", "balance_before", "balance_after", "description", "metadata", "created_at", "pos"],
            batch.users.flatMap { user in
                user.plan.adjustmentRows.map { row -> [String?] in
                    let metadata = #"{"legacyImport": {"reason": \#(Self.jsonString(row.reason))}}"#
                    return [
                        user.id, row.systemKey, String(row.amount), String(row.before), String(row.after),
                        "Legacy import adjustment (reviewed): \(row.reason)", metadata, row.createdAt, String(row.position),
                    ]
                }
            })
        try await connection.query(PostgresQuery(unsafeSQL: CreditsImportMapping.holdBack), logger: logger)
        var written = 0
        for step in CreditsImportMapping.placeUserRows {
            written += try await count(step.sql)
        }
        var binds = PostgresBindings()
        binds.append(baseURL)
        binds.append(keepCreatorEmails)
        written += try await count(CreditsImportMapping.placeGiftCodes, binds: binds)
        try await connection.query(
            """
            INSERT INTO legacy_credits.users AS x (user_id, state, reason, digest, adjusted)
            SELECT user_id, CASE decision WHEN 'import' THEN 'imported' ELSE 'held' END, reason, digest, adjusted FROM stage_users
            ON CONFLICT (user_id) DO UPDATE SET state = excluded.state, reason = excluded.reason, digest = excluded.digest,
                adjusted = x.adjusted OR excluded.adjusted, updated_at = now()
            """, logger: logger)
        return written
    }

    /// Places the redemptions whose code, transaction and redeemer are all imported now.
    func writeRedemptions() async throws -> Int {
        try await count(CreditsImportMapping.placeRedemptions)
    }

    /// Counts a completed run.
    func finish(source: String) async throws {
        try await connection.query(
            """
            INSERT INTO legacy_credits.import_state AS s (source, runs) VALUES (\(source), 1)
            ON CONFLICT (singleton) DO UPDATE SET runs = s.runs + 1, updated_at = now()
            """, logger: logger)
    }

    /// Records the source before the first batch (a second original is refused).
    func claim(source: String) async throws {
        try await connection.query(
            "INSERT INTO legacy_credits.import_state (source) VALUES (\(source)) ON CONFLICT (singleton) DO NOTHING", logger: logger)
    }

    /// Records a run and its report.
    func record(_ report: ImportReport) async throws {
        try await ImportRuns.record(report, schema: "legacy_credits", on: connection, logger: logger)
    }

    static func jsonString(_ text: String) -> String {
        String(decoding: try! JSONEncoder().encode(text), as: UTF8.self)
    }
}
