import HTTPKit
import Logging
import PostgresNIO

/// The invariants of an imported change log (spec §4: counts, cursors, heads) and the
/// original data our schema has no place for, checked over the whole import after a run.
struct SyncImportChecks: Sendable {
    let connection: PostgresConnection
    let logger: Logger

    /// Adds counts, violations, notices and facts to `report`. The original counts its rows per (user, app, op) while ours counts what it imported.
    func run(source: LegacySyncSource, cutover: Int64, into report: inout ImportReport) async throws {
        async let sourceCounts = source.groupCounts()
        let imported = try await importedRows()
        compareCounts(try await sourceCounts, imported.counts, into: &report)
        report.violation("cursors below µs(created_at)", count: imported.below.count, examples: imported.below.examples)
        report.violation(
            "cursors not increasing in (created_at, id) order", count: imported.unordered.count, examples: imported.unordered.examples)
        for check in Self.violations {
            let (count, examples) = try await finding(sql: check.sql)
            report.violation(check.name, count: count, examples: examples)
        }
        let (lowHeads, lowExamples) = try await finding(
            """
            SELECT user_id || ' / ' || app_id || ': ' || last_cursor FROM sync.heads h
            WHERE last_cursor < \(cutover) AND EXISTS (SELECT 1 FROM legacy_sync.sync_changes l WHERE l.user_id = h.user_id AND l.app_id = h.app_id)
            """)
        report.violation("heads below the cut-over cursor \(cutover)", count: lowHeads, examples: lowExamples)
        for check in Self.notices {
            let (count, examples) = try await finding(sql: check.sql)
            report.notice(check.name, count: count, examples: examples)
        }
        let figures = try await connection.query(
            """
            SELECT
                (SELECT count(*) FROM (SELECT 1 FROM legacy_sync.sync_changes GROUP BY user_id, app_id, created_at HAVING count(*) > 1) t)::bigint,
                (SELECT count(*) FROM sync.heads)::bigint
            """, logger: logger)
        for try await (ties, heads) in figures.decode((Int64, Int64).self) {
            report.facts["tie groups (user, app, created_at with several rows)"] = String(ties)
            report.facts["heads"] = String(heads)
        }
        report.facts["rows with a cursor above their created_at (shifted ties)"] = String(imported.shifted)
        report.facts["largest cursor shift (µs)"] = String(imported.largestShift)
        report.facts["cut-over cursor"] = "\(cutover) (\(Timestamp.format(microseconds: cutover)))"
    }

    /// What one pass over the imported rows (each change joined to its original row) finds.
    struct Imported {
        /// Imported rows per "user\u{1}app\u{1}op" of the original.
        var counts: [String: Int] = [:]
        var below = Occurrences()
        var unordered = Occurrences()
        var shifted = 0
        var largestShift: Int64 = 0
    }

    struct Occurrences {
        var count = 0
        var examples: [String] = []

        mutating func add(_ text: String) {
            count += 1
            if examples.count < 10 { examples.append(text) }
        }
    }

    /// Invariant 1 (imported rows per (user, app, op)), invariant 8 (cursors not below
    /// created_at, increasing in (created_at, id) order but for late rows) and the shifted
    /// ties, in one join of sync.changes with the legacy copy.
    private func importedRows() async throws -> Imported {
        let rows = try await connection.query(
            """
            WITH j AS MATERIALIZED (
                SELECT l.user_id || chr(1) || l.app_id || chr(1) || l.op AS key, c.user_id, c.app_id, c.cursor, l.late,
                    (extract(epoch FROM l.created_at) * 1000000)::bigint AS created,
                    (extract(epoch FROM c.received_at) * 1000000)::bigint AS received,
                    -- Late rows were placed after the rows imported before them: only the others are in order.
                    lag(c.cursor) OVER (PARTITION BY c.user_id, c.app_id, l.late ORDER BY l.created_at, l.id) AS before
                FROM \(unescaped: Self.imported)
            )
            SELECT 'count', key, count(*)::bigint FROM j GROUP BY key
            UNION ALL
            SELECT 'below', user_id || ' / ' || app_id || ' / ' || cursor, 1 FROM j WHERE cursor < created
            UNION ALL
            SELECT 'unordered', user_id || ' / ' || app_id || ' / ' || cursor, 1 FROM j WHERE NOT late AND cursor <= before
            UNION ALL
            SELECT 'shifted', NULL, count(*) FILTER (WHERE cursor > received)::bigint FROM j
            UNION ALL
            SELECT 'shift', NULL, coalesce(max(cursor - received), 0)::bigint FROM j
            """, logger: logger)
        var imported = Imported()
        for try await (kind, text, number) in rows.decode((String, String?, Int64).self) {
            switch kind {
            case "count": imported.counts[text ?? ""] = Int(number)
            case "below": imported.below.add(text ?? "")
            case "unordered": imported.unordered.add(text ?? "")
            case "shifted": imported.shifted = Int(number)
            default: imported.largestShift = number
            }
        }
        return imported
    }

    /// Invariant 1: per (user, app, op) the original's rows = the imported rows.
    private func compareCounts(_ source: [String: Int], _ target: [String: Int], into report: inout ImportReport) {
        var mismatches: [String] = []
        for key in Set(source.keys).union(target.keys).sorted() where source[key, default: 0] != target[key, default: 0] {
            mismatches.append("\(key.replacingOccurrences(of: "\u{1}", with: " / ")): original \(source[key, default: 0]), imported \(target[key, default: 0])")
        }
        report.tables.append(
            ImportReport.TableCount(
                table: "public.sync_changes -> sync.changes", read: source.values.reduce(0, +), written: target.values.reduce(0, +), reported: 0))
        report.violation("rows per (user, app, op) differ between the original and the import", count: mismatches.count, examples: mismatches)
    }

    private func finding(sql: String) async throws -> (Int, [String]) {
        try await finding(PostgresQuery(unsafeSQL: sql))
    }

    /// Runs a query returning one text per occurrence: the count and the first ten.
    private func finding(_ query: PostgresQuery) async throws -> (Int, [String]) {
        var count = 0
        var examples: [String] = []
        for try await text in try await connection.query(query, logger: logger).decode(String.self) {
            count += 1
            if examples.count < 10 { examples.append(text) }
        }
        return (count, examples)
    }

    static let imported = "sync.changes c JOIN legacy_sync.sync_changes l ON l.id = c.event_id"

    /// The heads (invariant 8 is checked in `importedRows`).
    static let violations: [(name: String, sql: String)] = [
        (
            "heads below the largest cursor of their (user, app)",
            """
            SELECT c.user_id || ' / ' || c.app_id FROM sync.changes c LEFT JOIN sync.heads h USING (user_id, app_id)
            GROUP BY c.user_id, c.app_id, h.last_cursor HAVING coalesce(h.last_cursor, 0) < max(c.cursor)
            """
        ),
    ]

    /// Data with no place in our schema (kept in legacy_sync.sync_changes) and rows to review.
    static let notices: [(name: String, sql: String)] = [
        (
            "updates without fields (served with no fields; their data reached no one)",
            "SELECT id::text FROM legacy_sync.sync_changes WHERE op = 'update' AND (field_timestamps IS NULL OR field_timestamps = '{}'::jsonb)"
        ),
        (
            "update data keys without a timestamp (not imported)",
            """
            SELECT id::text FROM legacy_sync.sync_changes WHERE op = 'update' AND data IS NOT NULL AND data <> 'null'::jsonb
                AND (jsonb_typeof(data) <> 'object' OR EXISTS (SELECT 1 FROM jsonb_object_keys(data) k
                     WHERE NOT (jsonb_typeof(field_timestamps) = 'object' AND field_timestamps ? k)))
            """
        ),
        (
            "delete data besides deletedAt (not imported)",
            """
            SELECT id::text FROM legacy_sync.sync_changes WHERE op = 'delete' AND data IS NOT NULL AND data <> 'null'::jsonb
                AND (jsonb_typeof(data) <> 'object' OR data - 'deletedAt' <> '{}'::jsonb)
            """
        ),
        (
            "updatedAt texts that are not RFC 3339 (stored as sent)",
            """
            SELECT id::text || ' ' || t.key || '=' || t.value::text FROM legacy_sync.sync_changes, jsonb_each(field_timestamps) t
            WHERE op = 'update' AND jsonb_typeof(field_timestamps) = 'object'
                AND (jsonb_typeof(t.value) <> 'string' OR t.value #>> '{}' !~ \(SyncImportMapping.rfc3339))
            """
        ),
        (
            "deletedAt values that are not RFC 3339 texts (non-strings dropped, texts stored as sent)",
            """
            SELECT id::text || ' ' || (data -> 'deletedAt')::text FROM legacy_sync.sync_changes
            WHERE op = 'delete' AND jsonb_typeof(data) = 'object' AND data ? 'deletedAt'
                AND (jsonb_typeof(data -> 'deletedAt') <> 'string' OR data ->> 'deletedAt' !~ \(SyncImportMapping.rfc3339))
            """
        ),
        (
            "rows of app ids the new API rejects (imported, unreachable until renamed)",
            "SELECT id::text || ' app ' || app_id FROM legacy_sync.sync_changes WHERE \(SyncImportMapping.rejectedAppID)"
        ),
        (
            "rows with a table name or record id over 256 characters (imported)",
            "SELECT id::text FROM legacy_sync.sync_changes WHERE length(table_name) > 256 OR length(record_id) > 256"
        ),
        (
            "rows that committed late in the original (after later rows were imported; placed after them)",
            "SELECT id::text FROM legacy_sync.sync_changes WHERE late"
        ),
    ]
}
