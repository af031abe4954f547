import Foundation
import HTTPKit
import PostgresNIO
import Testing
import TestSupport

/// `mana-sync import` as an operator runs it: the built executable against an
/// original-shaped database (docs/operations.md, "Cut-over from the original services").
@Suite(.heavy, .timeLimit(.minutes(15))) struct SyncImportTests {
    /// Awkward original rows: ties in created_at, an insert of JSON null, an update with an
    /// extra key and an empty updatedAt, an update without fields, deletes with extra data and
    /// a non-string deletedAt, an app id the new API rejects.
    static let awkwardRows = """
        INSERT INTO sync_changes (id, app_id, table_name, record_id, user_id, op, data, field_timestamps, client_id, created_at) VALUES
        ('00000000-0000-0000-0000-000000000001', 'todos', 'tasks', 't1', 'alice', 'insert', '{"title":"a"}', '{}', 'phone', '2024-03-01 10:00:00.123456+00'),
        ('00000000-0000-0000-0000-000000000003', 'todos', 'tasks', 't2', 'alice', 'insert', '{"title":"b"}', '{}', 'phone', '2024-03-01 10:00:01.000001+00'),
        ('00000000-0000-0000-0000-000000000002', 'todos', 'tasks', 't3', 'alice', 'insert', 'null', '{}', 'laptop', '2024-03-01 10:00:01.000001+00'),
        ('00000000-0000-0000-0000-000000000004', 'todos', 'tasks', 't4', 'alice', 'insert', '{"title":"d"}', '{}', '', '2024-03-01 10:00:01.000001+00'),
        ('00000000-0000-0000-0000-000000000005', 'todos', 'tasks', 't1', 'alice', 'update', '{"title":"a2","done":true,"extra":1}', '{"title":"2024-03-01T10:00:02Z","done":""}', 'laptop', '2024-03-01 10:00:01.000002+00'),
        ('00000000-0000-0000-0000-000000000006', 'todos', 'tasks', 't2', 'alice', 'update', '{"title":"lost"}', '{}', 'phone', '2024-03-01 10:00:03+00'),
        ('00000000-0000-0000-0000-000000000007', 'todos', 'tasks', 't3', 'alice', 'delete', '{"deletedAt":"2024-03-01T10:00:04Z","reason":"dup"}', '{}', 'phone', '2024-03-01 10:00:04+00'),
        ('00000000-0000-0000-0000-000000000008', 'todos', 'tasks', 't4', 'alice', 'delete', '{"deletedAt":12345}', '{}', 'phone', '2024-03-01 10:00:05+00'),
        ('00000000-0000-0000-0000-000000000009', 'notes', 'notes', 'n1', 'alice', 'delete', '{}', '{}', 'phone', '2024-03-01 10:00:05+00'),
        ('00000000-0000-0000-0000-00000000000a', 'my app!', 'things', 'x1', 'bob', 'insert', '{"big":9007199254740993}', '{}', 'c', '2024-03-02 00:00:00+00')
        """

    static func micros(_ text: String) -> Int64 { Timestamp.parseMicroseconds(text)! }

    @Test func importsAwkwardRowsVerifiesThemAndASecondRunCopiesNothing() async throws {
        let original = try await LegacyOriginals.syncDatabase()
        try await LegacyOriginals.run([Self.awkwardRows], on: original)
        let target = try await SyncTarget.migrated()
        let before = Int64(Date().timeIntervalSince1970 * 1_000_000)

        let first = try await target.runImport(from: original)
        #expect(first.status == 0, "\(first.output)")
        let report = try #require(first.report)
        #expect(report.violations.isEmpty, "\(report.violations)")
        #expect(report.rowsRead == 10 && report.rowsWritten == 10)
        #expect(report.tables.first?.read == 10 && report.tables.first?.written == 10)
        let notices = Dictionary(uniqueKeysWithValues: report.notices.map { ($0.check, $0.count) })
        #expect(notices.first { $0.key.hasPrefix("updates without fields") }?.value == 1)
        #expect(notices.first { $0.key.hasPrefix("update data keys without a timestamp") }?.value == 2)
        #expect(notices.first { $0.key.hasPrefix("delete data besides deletedAt") }?.value == 1)
        #expect(notices.first { $0.key.hasPrefix("updatedAt texts") }?.value == 1)
        #expect(notices.first { $0.key.hasPrefix("deletedAt values") }?.value == 1)
        #expect(notices.first { $0.key.hasPrefix("rows of app ids the new API rejects") }?.value == 1)
        #expect(report.facts["tie groups (user, app, created_at with several rows)"] == "1")
        #expect(report.facts["rows with a cursor above their created_at (shifted ties)"] == "3")
        #expect(report.facts["largest cursor shift (µs)"] == "2")
        #expect(first.output.contains("violations: none"))

        let rows = try await target.changes()
        let tie = Self.micros("2024-03-01T10:00:01.000001Z")
        let todos = [
            Self.micros("2024-03-01T10:00:00.123456Z"), tie, tie + 1, tie + 2, tie + 3, Self.micros("2024-03-01T10:00:03Z"),
            Self.micros("2024-03-01T10:00:04Z"), Self.micros("2024-03-01T10:00:05Z"),
        ].map { "alice/todos/\($0)" }
        let expected = ["alice/notes/\(Self.micros("2024-03-01T10:00:05Z"))"] + todos + ["bob/my app!/\(Self.micros("2024-03-02T00:00:00Z"))"]
        #expect(rows.map(\.cursor) == expected)
        let byID = Dictionary(uniqueKeysWithValues: rows.map { ($0.eventID.suffix(2), $0) })
        #expect(byID["02"]?.data == nil && byID["02"]?.op == "insert")
        #expect(byID["01"]?.data == #"{"title": "a"}"#)
        #expect(byID["05"]?.fields == #"{"done": {"value": true, "updatedAt": ""}, "title": {"value": "a2", "updatedAt": "2024-03-01T10:00:02Z"}}"#)
        #expect(byID["05"]?.data == nil)
        #expect(byID["06"]?.fields == "{}")
        #expect(byID["07"]?.deletedAt == "2024-03-01T10:00:04Z" && byID["07"]?.data == nil)
        #expect(byID["08"]?.deletedAt == nil)
        #expect(byID["0a"]?.data == #"{"big": 9007199254740993}"#)
        #expect(byID["04"]?.clientID == "")
        let heads = try await target.heads()
        #expect(heads.count == 3)
        #expect(heads.allSatisfy { $0.value >= before + 5_000_000 }, "\(heads)")

        let second = try await target.runImport(from: original)
        #expect(second.status == 0, "\(second.output)")
        #expect(second.report?.rowsWritten == 0)
        #expect(try await target.changes() == rows)

        // A row that committed late (created_at before the resume point) and a new one.
        try await LegacyOriginals.run(
            [
                """
                INSERT INTO sync_changes (id, app_id, table_name, record_id, user_id, op, data, client_id, created_at) VALUES
                ('00000000-0000-0000-0000-0000000000b1', 'todos', 'tasks', 't9', 'alice', 'insert', '{"late":true}', 'phone', '2024-03-01 09:00:00+00'),
                ('00000000-0000-0000-0000-0000000000b2', 'todos', 'tasks', 't8', 'alice', 'insert', '{"new":true}', 'phone', '2024-03-03 00:00:00+00')
                """
            ], on: original)
        let third = try await target.runImport(from: original)
        #expect(third.status == 0, "\(third.output)")
        #expect(third.report?.rowsWritten == 2)
        #expect(third.report?.notices.first { $0.check.hasPrefix("rows that committed late") }?.count == 1)
        let after = try await target.changes()
        #expect(after.first { $0.eventID.hasSuffix("b1") }?.cursor == "alice/todos/\(Self.micros("2024-03-01T10:00:05Z") + 1)")
        #expect(after.first { $0.eventID.hasSuffix("b2") }?.cursor == "alice/todos/\(Self.micros("2024-03-03T00:00:00Z"))")

        let status = try await target.run(["import", "--status"])
        #expect(status.status == 0)
        #expect(status.output.contains("rows imported: 12"), "\(status.output)")
        #expect(status.output.contains("runs completed: 3"), "\(status.output)")
    }

    /// `mana-sync compact` as an operator runs it, on imported history: it folds what it can,
    /// leaves alone the records whose timestamps no client can compare (the import keeps the
    /// original's empty `updatedAt`), and a second run finds nothing.
    @Test func compactFoldsImportedHistoryAndSkipsRecordsNoClientCanCompare() async throws {
        let original = try await LegacyOriginals.syncDatabase()
        let folded = """
            INSERT INTO sync_changes (id, app_id, table_name, record_id, user_id, op, data, field_timestamps, client_id, created_at) VALUES
            ('00000000-0000-0000-0000-00000000000b', 'todos', 'tasks', 't5', 'alice', 'insert', '{"title":"e"}', '{}', 'phone', '2024-03-01 11:00:00+00'),
            ('00000000-0000-0000-0000-00000000000c', 'todos', 'tasks', 't5', 'alice', 'update', '{"title":"e1"}', '{"title":"2024-03-01T11:00:01Z"}', 'phone', '2024-03-01 11:00:01+00'),
            ('00000000-0000-0000-0000-00000000000d', 'todos', 'tasks', 't5', 'alice', 'update', '{"done":true}', '{"done":"2024-03-01T11:00:02Z"}', 'laptop', '2024-03-01 11:00:02+00'),
            ('00000000-0000-0000-0000-00000000000e', 'todos', 'tasks', 't5', 'alice', 'update', '{"title":"old"}', '{"title":"2024-03-01T10:00:00Z"}', 'laptop', '2024-03-01 11:00:03+00')
            """
        try await LegacyOriginals.run([Self.awkwardRows, folded], on: original)
        let target = try await SyncTarget.migrated()
        let imported = try await target.runImport(from: original)
        #expect(imported.status == 0, "\(imported.output)")
        let refused = try await target.run(["compact", "--older-than", "soon"])
        #expect(refused.status == 64 && refused.output.contains("not a duration"), "\(refused.output)")

        let compact = try await target.run(["compact", "--older-than", "0s"])
        #expect(compact.status == 0, "\(compact.output)")
        // t3 and t4 keep only their deletes; t5 keeps its insert and its last update, which now
        // carries the winning title (11:00:01, not the later-received 10:00) and done.
        #expect(compact.output.contains("1 rows folded, 4 removed"), "\(compact.output)")
        #expect(try await target.count("SELECT count(*) FROM sync.changes") == 14 - 4)
        let t5 = try await target.count(
            "SELECT count(*) FROM sync.changes WHERE record_id = 't5' AND client_id = '' AND fields->'title'->'value' = '\"e1\"' AND fields ? 'done'")
        #expect(t5 == 1)
        #expect(try await target.count("SELECT count(*) FROM sync.changes WHERE record_id = 't1'") == 2)
        let again = try await target.run(["compact", "--older-than", "0s"])
        #expect(again.output.contains("0 rows folded, 0 removed"), "\(again.output)")
    }

    @Test func aDryRunChecksEverythingAndWritesNothing() async throws {
        let original = try await LegacyOriginals.syncDatabase()
        try await LegacyOriginals.run([Self.awkwardRows], on: original)
        let target = try await SyncTarget.migrated()
        let dry = try await target.runImport(from: original, ["--dry-run"])
        #expect(dry.status == 0, "\(dry.output)")
        #expect(dry.report?.dryRun == true)
        #expect(dry.report?.rowsWritten == 10)
        #expect(dry.report?.tables.first?.written == 10)
        #expect(dry.output.contains("dry run"))
        let left = try await TestDatabase.withClient(target.url) { client in
            try await client.query(
                "SELECT (SELECT count(*) FROM sync.changes)::bigint, (SELECT count(*) FROM sync.heads)::bigint, to_regnamespace('legacy_sync') IS NULL"
            ).decode((Int64, Int64, Bool).self).reduce(into: []) { $0.append($1) }
        }
        #expect(left.first?.0 == 0 && left.first?.1 == 0 && left.first?.2 == true)
    }

    @Test func anOwnerWithoutBypassRLSIsRefusedAndToldWhatItNeeds() async throws {
        let original = try await LegacyOriginals.syncDatabase()
        let role = "legacy_owner_\(UUID().uuidString.prefix(8).lowercased())"
        try await LegacyOriginals.run(
            ["CREATE ROLE \(role) LOGIN", "ALTER TABLE sync_changes OWNER TO \(role)", Self.awkwardRows], on: original)
        let target = try await SyncTarget.migrated()
        let refused = try await target.run(["import", "--from", LegacyOriginals.argument(original, user: role), "--quiet"])
        #expect(refused.status == 2)
        #expect(refused.output.contains("BYPASSRLS"), "\(refused.output)")
        #expect(try await target.changes().isEmpty)
    }

    @Test func aKilledImportResumesToTheSameResultAsAnUninterruptedOne() async throws {
        let original = try await LegacyOriginals.syncDatabase()
        // 60,000 rows over 40 users and 2 apps, in tie groups of three.
        try await LegacyOriginals.run(
            [
                """
                INSERT INTO sync_changes (app_id, table_name, record_id, user_id, op, data, field_timestamps, client_id, created_at)
                SELECT 'app' || (i % 2), 'items', 'r' || (i % 997), 'user' || (i % 40),
                    CASE i % 3 WHEN 0 THEN 'insert' WHEN 1 THEN 'update' ELSE 'delete' END,
                    CASE i % 3 WHEN 0 THEN jsonb_build_object('n', i) WHEN 1 THEN jsonb_build_object('n', i, 'x', 1)
                        ELSE jsonb_build_object('deletedAt', '2024-01-01T00:00:00Z') END,
                    CASE i % 3 WHEN 1 THEN '{"n":"2024-01-01T00:00:00Z"}'::jsonb ELSE '{}'::jsonb END,
                    'client' || (i % 3), timestamptz '2024-01-01 00:00:00+00' + (i / 3) * interval '1 microsecond' * 7
                FROM generate_series(1, 60000) i
                """
            ], on: original)
        let whole = try await SyncTarget.migrated()
        let uninterrupted = try await whole.runImport(from: original, ["--batch-size", "1000"])
        #expect(uninterrupted.status == 0, "\(uninterrupted.output)")

        let killed = try await SyncTarget.migrated()
        let process = try ChildProcess(
            "mana-sync", ["import", "--from", LegacyOriginals.argument(original), "--batch-size", "500"], environment: killed.environment)
        try await eventually(within: .seconds(60)) {
            (try? await killed.count("SELECT count(*) FROM legacy_sync.sync_changes")) ?? 0 >= 5_000
        }
        process.signal(SIGKILL)
        _ = try await process.waitForExit(timeout: .seconds(10))
        let partial = try await killed.count("SELECT count(*) FROM sync.changes")
        #expect(partial > 0 && partial < 60_000, "killed after \(partial) rows")
        // What committed is a gap-free prefix of every (user, app).
        #expect(try await killed.count("SELECT count(*) FROM sync.heads h WHERE last_cursor < (SELECT max(cursor) FROM sync.changes c WHERE c.user_id = h.user_id AND c.app_id = h.app_id)") == 0)
        // The first load went without the indexes of both tables; the status says so.
        #expect(try await killed.indexes().isEmpty)
        let status = try await killed.run(["import", "--status"])
        #expect(status.output.contains("legacy_sync.sync_changes.sync_changes_pkey, sync.changes.changes_by_space, sync.changes.changes_by_space_cursor, sync.changes.changes_by_table, sync.changes.changes_pkey"), "\(status.output)")
        let resumed = try await killed.runImport(from: original, ["--batch-size", "1000"])
        #expect(resumed.status == 0, "\(resumed.output)")
        #expect(resumed.report.map { Int64($0.rowsWritten) + partial } == 60_000)
        #expect(try await killed.digest() == (try await whole.digest()))
        // Both runs end with the indexes a migration creates (and the verbatim copy's key).
        let migratedIndexes = try await SyncTarget.migrated().indexes()
        #expect(try await whole.indexes() == migratedIndexes + ["CREATE UNIQUE INDEX sync_changes_pkey ON legacy_sync.sync_changes USING btree (id)"])
        #expect(try await killed.indexes() == (try await whole.indexes()))
    }
}

extension SyncImportTests {
    /// Original rows `from`...`to`: 30 users, 2 apps, tie groups of three, a quarter updates,
    /// record ids with a tab, a backslash and a newline.
    static func generated(_ from: Int, _ to: Int) -> String {
        """
        INSERT INTO sync_changes (app_id, table_name, record_id, user_id, op, data, field_timestamps, client_id, created_at)
        SELECT 'app' || (i % 2), 'items', 'r' || (i % 101) || CASE WHEN i % 5 = 0 THEN E'\\t\\\\\\n' ELSE '' END, 'user' || (i % 30),
            CASE i % 4 WHEN 1 THEN 'update' WHEN 3 THEN 'delete' ELSE 'insert' END,
            CASE i % 4 WHEN 1 THEN jsonb_build_object('n', i, 'x', E'tab\\there') WHEN 3 THEN jsonb_build_object('deletedAt', '2024-01-01T00:00:00Z')
                ELSE jsonb_build_object('n', i, 'text', E'line\\nbreak \\\\ ü') END,
            CASE i % 4 WHEN 1 THEN '{"n":"2024-01-01T00:00:00Z"}'::jsonb ELSE '{}'::jsonb END,
            'client' || (i % 3), timestamptz '2024-01-01 00:00:00+00' + (i / 3) * interval '1 microsecond' * 5
        FROM generate_series(\(from), \(to)) i
        """
    }

    /// A batch's verbatim copy commits on its own connection just before its changes: a run
    /// killed between the two commits leaves verbatim rows after the resume point, which the
    /// next run drops and copies again, ending where an uninterrupted import ends. (The
    /// original's table lives in the target's own database here, so that plain SQL can make
    /// exactly the state such a run leaves.)
    @Test func aRunKilledBetweenItsTwoCommitsEndsLikeAnUninterruptedOne() async throws {
        let target = try await SyncTarget.migrated()
        // Both parts end between tie groups (a row tying the resume point would be a late row).
        try await LegacyOriginals.run(LegacyOriginals.syncDDL + [Self.generated(1, 2_999)], on: target.url)
        let first = try await target.runImport(from: target.url, ["--batch-size", "700"])
        #expect(first.status == 0, "\(first.output)")
        try await LegacyOriginals.run(
            [
                Self.generated(3_000, 6_000),
                // What the killed run committed: the verbatim copy of its first batch, without its changes.
                """
                INSERT INTO legacy_sync.sync_changes (id, app_id, table_name, record_id, user_id, op, data, field_timestamps, client_id, created_at)
                SELECT id, app_id, table_name, record_id, user_id, op, data, field_timestamps, client_id, created_at
                FROM public.sync_changes s
                WHERE (s.created_at, s.id) > (SELECT last_created_at, last_id FROM legacy_sync.import_state)
                ORDER BY created_at, id LIMIT 700
                """,
                """
                INSERT INTO legacy_sync.import_ahead (last_created_at, last_id)
                SELECT created_at, id FROM legacy_sync.sync_changes ORDER BY created_at DESC, id DESC LIMIT 1
                ON CONFLICT (singleton) DO UPDATE SET last_created_at = excluded.last_created_at, last_id = excluded.last_id
                """,
            ], on: target.url)
        #expect(try await target.count("SELECT count(*) FROM legacy_sync.sync_changes") == 3_699)

        let resumed = try await target.runImport(from: target.url, ["--batch-size", "700"])
        #expect(resumed.status == 0, "\(resumed.output)")
        #expect(resumed.report?.violations.isEmpty == true, "\(resumed.report?.violations ?? [])")
        #expect(resumed.report?.rowsWritten == 3_001)
        #expect(try await target.count("SELECT count(*) FROM legacy_sync.import_ahead a, legacy_sync.import_state s WHERE (a.last_created_at, a.last_id) > (s.last_created_at, s.last_id)") == 0)

        let whole = try await SyncTarget.migrated()
        let uninterrupted = try await whole.runImport(from: target.url)
        #expect(uninterrupted.status == 0, "\(uninterrupted.output)")
        #expect(try await target.digest() == (try await whole.digest()))
        #expect(try await target.legacyDigest() == (try await whole.legacyDigest()))
    }

    /// The first import of a whole original (an empty target, one large batch) and an import
    /// in several runs while the original grows (each continuing after the resume point, in
    /// small batches) give the same change log, heads and legacy copy.
    @Test func oneRunAndSeveralIncrementalRunsGiveTheSameResult() async throws {
        let original = try await LegacyOriginals.syncDatabase()
        let stepwise = try await SyncTarget.migrated()
        var written = 0
        // Runs end between tie groups (a row tying the resume point would be a late row).
        for (from, to) in [(1, 2_999), (3_000, 3_002), (3_003, 7_000)] {
            try await LegacyOriginals.run([Self.generated(from, to)], on: original)
            let run = try await stepwise.runImport(from: original, ["--batch-size", "700"])
            #expect(run.status == 0, "\(run.output)")
            #expect(run.report?.violations.isEmpty == true, "\(run.report?.violations ?? [])")
            written += run.report?.rowsWritten ?? 0
        }
        #expect(written == 7_000)
        let again = try await stepwise.runImport(from: original)
        #expect(again.status == 0 && again.report?.rowsWritten == 0, "\(again.output)")

        let whole = try await SyncTarget.migrated()
        let one = try await whole.runImport(from: original, ["--batch-size", "100000"])
        #expect(one.status == 0, "\(one.output)")
        #expect(one.report?.rowsRead == 7_000 && one.report?.rowsWritten == 7_000)
        #expect(try await whole.digest() == (try await stepwise.digest()))
        #expect(try await whole.legacyDigest() == (try await stepwise.legacyDigest()))
        #expect(try await whole.heads().keys.sorted() == (try await stepwise.heads().keys.sorted()))
        // The legacy copy is the original, byte for byte.
        let source = try await TestDatabase.withClient(original) { client in
            try await client.query(PostgresQuery(unsafeSQL: SyncTarget.legacyDigestSQL(table: "public.sync_changes", late: "'false'")))
                .decode(String.self).reduce("") { $1 }
        }
        #expect(source == (try await whole.legacyDigest()))
    }
}

/// Our mana-sync database as an import target, and the executable run against it.
struct SyncTarget {
    let url: DatabaseURL

    static func migrated() async throws -> SyncTarget {
        let target = SyncTarget(url: try await PostgresCluster.shared.createDatabase(prefix: "import_sync"))
        let migrate = try await target.run(["migrate"])
        #expect(migrate.status == 0, "\(migrate.output)")
        return target
    }

    var environment: [String: String] {
        ["DATABASE_URL": LegacyOriginals.argument(url), "LOG_LEVEL": "warning"]
    }

    /// Runs `mana-sync` with `arguments` to completion.
    func run(_ arguments: [String], executable: String = "mana-sync", timeout: Duration = .seconds(120)) async throws -> (status: Int32?, output: String) {
        let process = try ChildProcess(executable, arguments, environment: environment)
        let status = try await process.waitForExit(timeout: timeout)
        return (status, process.output)
    }

    /// Runs `mana-sync import --from original` with a JSON report.
    func runImport(
        from original: DatabaseURL, _ extra: [String] = [], executable: String = "mana-sync", timeout: Duration = .seconds(120)
    ) async throws -> (status: Int32?, output: String, report: ImportReport?) {
        let path = NSTemporaryDirectory() + "/import-report-\(UUID().uuidString).json"
        defer { unlink(path) }
        let (status, output) = try await run(
            ["import", "--from", LegacyOriginals.argument(original), "--report", path, "--quiet"] + extra, executable: executable, timeout: timeout)
        let report = (try? Data(contentsOf: URL(fileURLWithPath: path))).flatMap { try? JSONDecoder().decode(ImportReport.self, from: $0) }
        return (status, output, report)
    }

    struct Row: Equatable, Sendable {
        let cursor: String
        let eventID: String
        let op: String
        let data: String?
        let fields: String?
        let deletedAt: String?
        let clientID: String
    }

    func changes() async throws -> [Row] {
        try await TestDatabase.withClient(url) { client in
            try await client.query(
                """
                SELECT user_id || '/' || app_id || '/' || cursor, event_id::text, op, data::text, fields::text, deleted_at, client_id
                FROM sync.changes ORDER BY 1
                """
            ).decode((String, String, String, String?, String?, String?, String).self).reduce(into: []) {
                $0.append(Row(cursor: $1.0, eventID: $1.1, op: $1.2, data: $1.3, fields: $1.4, deletedAt: $1.5, clientID: $1.6))
            }
        }
    }

    func heads() async throws -> [String: Int64] {
        try await TestDatabase.withClient(url) { client in
            var heads: [String: Int64] = [:]
            for try await (pair, cursor) in try await client.query("SELECT user_id || '/' || app_id, last_cursor FROM sync.heads")
                .decode((String, Int64).self)
            {
                heads[pair] = cursor
            }
            return heads
        }
    }

    func count(_ sql: String) async throws -> Int64 {
        try await TestDatabase.withClient(url) { client in
            try await client.query(PostgresQuery(unsafeSQL: sql)).decode(Int64.self).reduce(0) { $1 }
        }
    }

    static func legacyDigestSQL(table: String, late: String) -> String {
        """
        SELECT md5(string_agg(concat_ws('|', id::text, app_id, table_name, record_id, user_id, op, data::text, field_timestamps::text,
            client_id, created_at::text, \(late)), E'\\n' ORDER BY created_at, id))
        FROM \(table)
        """
    }

    /// The definitions of the indexes of `sync.changes` and `legacy_sync.sync_changes`, sorted.
    func indexes() async throws -> [String] {
        try await TestDatabase.withClient(url) { client in
            try await client.query(
                """
                SELECT indexdef FROM pg_indexes
                WHERE (schemaname, tablename) IN (('sync', 'changes'), ('legacy_sync', 'sync_changes')) ORDER BY schemaname DESC, indexname
                """
            ).decode(String.self).reduce(into: []) { $0.append($1) }
        }
    }

    /// A digest of the verbatim legacy copy.
    func legacyDigest() async throws -> String {
        try await TestDatabase.withClient(url) { client in
            try await client.query(PostgresQuery(unsafeSQL: Self.legacyDigestSQL(table: "legacy_sync.sync_changes", late: "late::text")))
                .decode(String.self).reduce("") { $1 }
        }
    }

    /// A digest of every imported change (all columns) and of the heads' (user, app) pairs.
    func digest() async throws -> String {
        try await TestDatabase.withClient(url) { client in
            try await client.query(
                """
                SELECT md5(string_agg(concat_ws('|', user_id, app_id, cursor, table_name, record_id, op, data::text, fields::text,
                    deleted_at, client_id, received_at::text, event_id::text, extra::text), E'\\n' ORDER BY user_id, app_id, cursor))
                    || (SELECT md5(string_agg(user_id || '/' || app_id, ',' ORDER BY user_id, app_id)) FROM sync.heads)
                FROM sync.changes
                """
            ).decode(String.self).reduce("") { $1 }
        }
    }
}

/// The import rate of docs/benchmarks.md: `MANA_IMPORT_BENCH=1000000 swift test --filter SyncImportBenchmark`;
/// `MANA_IMPORT_BIN=/path/to/release/mana-sync` runs that executable instead of the debug build's.
@Suite(.timeLimit(.minutes(30))) struct SyncImportBenchmark {
    static let rows = Int(ProcessInfo.processInfo.environment["MANA_IMPORT_BENCH"] ?? "") ?? 0

    @Test(.enabled(if: rows > 0)) func importRate() async throws {
        let original = try await LegacyOriginals.syncDatabase()
        // The rows bench/import-baseline.sh uses too.
        let rows = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("bench/sync-import-rows.sql")
        let insert = try String(contentsOf: rows, encoding: .utf8).replacingOccurrences(of: ":rows", with: String(Self.rows))
        try await LegacyOriginals.run([insert, "ANALYZE sync_changes"], on: original)
        let target = try await SyncTarget.migrated()
        let executable = ProcessInfo.processInfo.environment["MANA_IMPORT_BIN"] ?? "mana-sync"
        let run = try await target.runImport(from: original, executable: executable, timeout: .seconds(1500))
        #expect(run.status == 0, "\(run.output)")
        let report = try #require(run.report)
        #expect(report.violations.isEmpty, "\(report.violations)")
        print(String(format: "import benchmark: %d rows in %.1f s = %.0f rows/s", report.rowsRead, report.seconds, report.rowsPerSecond))
        for (key, value) in report.facts.sorted(by: { $0.key < $1.key }) where key.contains("(s)") { print("  \(key): \(value)") }
    }
}
