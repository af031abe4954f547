import Foundation
import HTTPKit
import PostgresNIO
import Testing
import TestSupport

@testable import ManaSync

/// A page reads about as many rows as it returns, whatever the table's statistics say
/// (migration 0018): a user who was 2 % of the log when it was analysed, and then wrote 40,000
/// changes, is estimated at a few hundred rows; without the functions' settings PostgreSQL read
/// all of them through a bitmap scan and sorted them for a page of 500 (3,262 buffers, not 508).
@Suite(.timeLimit(.minutes(3))) struct PagePlanTests {
    @Test func pagesOfAUserTheStatisticsUnderestimateAreReadInCursorOrder() async throws {
        let url = try await PostgresCluster.shared.createDatabase(prefix: "page_plans")
        try await TestDatabase.withClient(url) { client in
            let logger = TestDatabase.logger
            _ = try await MigrationRunner(client: client, migrations: try SyncMigrations.all(), lockName: "m", logger: logger).run()
            // The statistics stay as ANALYZE left them (no autovacuum in between).
            try await client.query("ALTER TABLE sync.changes SET (autovacuum_enabled = off)", logger: logger)
            try await client.query(
                """
                INSERT INTO sync.changes (user_id, app_id, cursor, table_name, record_id, op, data, client_id, served)
                SELECT CASE WHEN g % 50 = 0 THEN 'late' ELSE 'other-' || (g % 97) END, 'a', 1000000 + g, 't' || (g % 3), 'r' || g,
                    'insert', '{"n":1}', 'c', '{"table":"t","id":"r","op":"insert","data":{"n":1}}'
                FROM generate_series(1, 100000) g
                """, logger: logger)
            try await client.query("ANALYZE sync.changes", logger: logger)
            try await client.query(
                """
                INSERT INTO sync.changes (user_id, app_id, cursor, table_name, record_id, op, data, client_id, served)
                SELECT 'late', 'a', 2000000 + g, 't' || (g % 3), 'r' || g, 'insert', '{"n":1}', 'c',
                    '{"table":"t","id":"r","op":"insert","data":{"n":1}}'
                FROM generate_series(1, 40000) g
                """, logger: logger)
            // (call, rows it returns, most buffers an ordered scan needs: a heap page and an index
            // visit per row, and a margin)
            let calls = [
                ("sync.log_segment('late', 'a', 0, 500)", 500, 700),
                ("sync.pull('late', 'a', 't1', 0, NULL, 100)", 1, 300),
                // A push that stores nothing and asks for its answer page of 500 (the push's page
                // runs a generic plan, made from the same statistics).
                ("sync.push_rows('{late}', '{a}', '{c2}', '{\"\"}', '{0}', '{0}', '{500}', \(String(repeating: "'{}', ", count: 9))'{}')",
                 1, 700),
            ]
            for (call, rows, bound) in calls {
                _ = try await explain(call, client: client)  // the first call plans the function's statements
                // The fewer buffers of two more calls: a call that plans again reads catalog pages
                // too, which other tests' DDL on the shared cluster can cause at any moment (CI:
                // 1,472 buffers once for a page that reads about 600).
                var fewest = Int.max
                for _ in 0..<2 {
                    let plan = try await explain(call, client: client)
                    #expect(plan["Actual Rows"] as? Int == rows, "\(call)")
                    #expect(plan["Temp Written Blocks"] as? Int == 0, "\(call) sorted on disk")
                    let shared = (plan["Shared Hit Blocks"] as? Int ?? -1) + (plan["Shared Read Blocks"] as? Int ?? 0)
                    fewest = min(fewest, shared)
                }
                #expect((0...bound).contains(fewest), "\(call) read \(fewest) buffers")
            }
        }
    }

    /// The top plan node of `EXPLAIN (ANALYZE, BUFFERS)` of `SELECT * FROM <call>`.
    private func explain(_ call: String, client: PostgresClient) async throws -> [String: Any] {
        let rows = try await client.query(
            PostgresQuery(unsafeSQL: "EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) SELECT * FROM \(call)"), logger: TestDatabase.logger)
        for try await text in rows.decode(String.self) {
            let document = try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [[String: Any]]
            return document?.first?["Plan"] as? [String: Any] ?? [:]
        }
        return [:]
    }
}
