import Foundation
import HTTPKit
import PostgresNIO
import TestSupport
import Testing

@testable import ManaSync

/// A change's space in its own column (migration 0006): resolved on push as the original
/// does, served as a top-level `spaceId`, and filled in for rows stored before.
@Suite(.timeLimit(.minutes(15))) struct SpaceColumnTests {
    static let epoch = "1970-01-01T00:00:00Z"

    @Test func theSpaceIsStoredInItsColumnAndServedAtTheTopLevel() async throws {
        try await SyncHarness.run { h in
            h.auth.set("u_a", ["org_fam": "member", "org_b": "member"])
            let changes: [JSONValue] = [
                ["table": "events", "id": "e1", "op": "insert", "data": ["title": "Zoo", "spaceId": "org_fam"]],
                ["table": "events", "id": "e1", "op": "update", "spaceId": "org_fam", "actor": ["kind": "user"],
                 "fields": ["title": ["value": "Zoo!", "at": "2026-04-20T10:01:00.000Z"]]],
                ["table": "events", "id": "e2", "op": "insert", "data": ["title": "mine"]],
                ["table": "events", "id": "e3", "op": "update", "fields": ["spaceId": ["value": "org_b", "at": "2026-04-20T10:01:00.000Z"]]],
            ]
            #expect(try await h.push("cal", as: "u_a", client: "c1", changes: changes).status == .ok)
            let pulled = try await h.pull("cal", as: "u_a", collection: "events", since: Self.epoch).body["serverChanges"]?.array ?? []
            #expect(pulled.map { $0["spaceId"] } == ["org_fam", "org_fam", nil, "org_b"])
            #expect(pulled[1]["actor"] == ["kind": "user"])
            let columns = try await h.withDatabase { client in
                try await client.query("SELECT space_id, extra::text FROM sync.changes ORDER BY cursor", logger: TestDatabase.logger)
                    .decode((String?, String?).self).reduce(into: []) { $0.append($1) }
            }
            #expect(columns.map(\.0) == ["org_fam", "org_fam", nil, "org_b"])
            #expect(columns[1].1 == #"{"actor": {"kind": "user"}}"#)
        }
    }

    @Test func rowsStoredBeforeTheColumnGetTheirSpace() async throws {
        let url = try await PostgresCluster.shared.createDatabase(prefix: "space_backfill")
        try await TestDatabase.withClient(url) { client in
            let all = try SyncMigrations.all()
            _ = try await MigrationRunner(client: client, migrations: all.filter { $0.version < 6 }, lockName: "m", logger: TestDatabase.logger).run()
            try await client.query(
                """
                INSERT INTO sync.changes (user_id, app_id, cursor, table_name, record_id, op, data, fields, client_id, extra) VALUES
                ('u', 'a', 1, 't', 'r1', 'insert', '{"spaceId":"inner"}', NULL, 'c', '{"spaceId":"top","actor":1}'),
                ('u', 'a', 2, 't', 'r2', 'insert', '{"spaceId":"inner"}', NULL, 'c', '{"spaceId":""}'),
                ('u', 'a', 3, 't', 'r3', 'update', NULL, '{"spaceId":{"value":"field","at":"2026-01-01T00:00:00Z"}}', 'c', NULL),
                ('u', 'a', 4, 't', 'r4', 'insert', '{"title":"none"}', NULL, 'c', '{"actor":1}')
                """, logger: TestDatabase.logger)
            _ = try await MigrationRunner(client: client, migrations: all, lockName: "m", logger: TestDatabase.logger).run()
            let rows = try await client.query(
                "SELECT space_id, extra::text, sync.extra_out(space_id, extra)::text FROM sync.changes ORDER BY cursor", logger: TestDatabase.logger
            ).decode((String?, String?, String?).self).reduce(into: []) { $0.append($1) }
            #expect(rows.map(\.0) == ["top", "inner", "field", nil])
            #expect(rows.map(\.1) == [#"{"actor": 1}"#, #"{"spaceId": ""}"#, nil, #"{"actor": 1}"#])
            #expect(rows.map(\.2) == [#"{"actor": 1, "spaceId": "top"}"#, #"{"spaceId": "inner"}"#, #"{"spaceId": "field"}"#, #"{"actor": 1}"#])
        }
    }
}
