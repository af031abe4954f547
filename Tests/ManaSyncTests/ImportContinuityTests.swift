import Foundation
import HTTPKit
import PostgresNIO
import Testing
import TestSupport

@testable import ManaSync

/// Clients of the original Go mana-sync keep their cursors across the cut-over: after the
/// import they pull from us and miss nothing (spec §4, invariant 9).
@Suite(.heavy, .timeLimit(.minutes(15))) struct ImportContinuityTests {
    static let user = "carol"
    static let app = "notes"
    static let tables = ["notes", "tags"]
    /// Writers (one pushes without a client id: `''`) and the clients that pull.
    static let clients = ["phone", "laptop", ""]
    static let pullers = ["phone", "laptop"]

    /// A change as the original served it: insert → data, update → fields, delete → deletedAt.
    struct Served: Hashable, Sendable {
        let id: String
        let record: String
        let op: String
        let body: JSONValue?
    }

    /// Writes like the original: one transaction per change, created_at = now(); some rows
    /// copy the previous row's created_at (a tie).
    static func write(_ original: DatabaseURL, round: Int) async throws {
        try await TestDatabase.withClient(original) { client in
            for index in 0..<12 {
                let table = tables[index % 2]
                let clientID = clients[(index + round) % 3]
                let record = "r\(index % 5)"
                let tie = index % 4 == 3
                switch index % 3 {
                case 0:
                    try await client.query(
                        """
                        INSERT INTO sync_changes (app_id, table_name, record_id, user_id, op, data, client_id, created_at)
                        SELECT \(app), \(table), \(record), \(user), 'insert', jsonb_build_object('round', \(round), 'i', \(index)), \(clientID),
                            CASE WHEN \(tie) THEN (SELECT max(created_at) FROM sync_changes) ELSE now() END
                        """)
                case 1:
                    try await client.query(
                        """
                        INSERT INTO sync_changes (app_id, table_name, record_id, user_id, op, data, field_timestamps, client_id, created_at)
                        SELECT \(app), \(table), \(record), \(user), 'update', jsonb_build_object('title', \(index), 'untimed', 1),
                            jsonb_build_object('title', '2024-05-01T00:00:00.123456789Z'), \(clientID),
                            CASE WHEN \(tie) THEN (SELECT max(created_at) FROM sync_changes) ELSE now() END
                        """)
                default:
                    try await client.query(
                        """
                        INSERT INTO sync_changes (app_id, table_name, record_id, user_id, op, data, client_id, created_at)
                        SELECT \(app), \(table), \(record), \(user), 'delete', jsonb_build_object('deletedAt', '2024-05-02T00:00:00Z', 'why', 'x'),
                            \(clientID), CASE WHEN \(tie) THEN (SELECT max(created_at) FROM sync_changes) ELSE now() END
                        """)
                }
            }
        }
    }

    /// The original's pull: rows of the table after `since` (µs truncation of the RFC 3339
    /// text), not the client's own, ordered by created_at; each with its created_at (µs).
    static func originalPull(_ original: DatabaseURL, table: String, client: String, since: String) async throws -> [(Served, Int64)] {
        let micros = Timestamp.parseMicroseconds(since) ?? 0
        return try await TestDatabase.withClient(original) { connection in
            let rows = try await connection.query(
                """
                SELECT id::text, record_id, op, data::text, field_timestamps::text, (extract(epoch FROM created_at) * 1000000)::bigint
                FROM sync_changes
                WHERE user_id = \(user) AND app_id = \(app) AND table_name = \(table)
                    AND created_at > timestamptz 'epoch' + \(micros) * interval '1 microsecond' AND client_id <> \(client)
                ORDER BY created_at
                """)
            var served: [(Served, Int64)] = []
            for try await (id, record, op, data, timestamps, created) in rows.decode((String, String, String, String?, String?, Int64).self) {
                served.append((Served(id: id, record: record, op: op, body: originalBody(op: op, data: data, timestamps: timestamps)), created))
            }
            return served
        }
    }

    static func json(_ text: String?) -> JSONValue? {
        text.flatMap { try? JSONDecoder().decode(JSONValue.self, from: Data($0.utf8)) }
    }

    static func originalBody(op: String, data: String?, timestamps: String?) -> JSONValue? {
        let data = json(data)
        switch op {
        case "insert":
            return data == .null ? nil : data
        case "update":
            var fields: [String: JSONValue] = [:]
            for (key, stamp) in json(timestamps)?.objectValue ?? [:] {
                if let value = data?.objectValue?[key] { fields[key] = ["value": value, "updatedAt": stamp] }
            }
            return .object(fields)
        default:
            return data?["deletedAt"]?.stringValue.map { .string($0) }
        }
    }

    static func ourBody(_ change: JSONValue) -> JSONValue? {
        switch change["op"]?.stringValue {
        case "insert": change["data"]
        case "update": change["fields"]
        default: change["deletedAt"]
        }
    }

    /// An RFC 3339 cursor with nine fractional digits, as the Go host's wall clock printed it.
    static func goCursor(_ micros: Int64) -> String {
        let text = Timestamp.format(microseconds: micros)
        return text.dropLast() + String(format: "%03d", Int.random(in: 1...999)) + "Z"
    }

    /// Everything our service serves to `client` for `table` after `since`, page by page.
    static func ourPull(_ harness: SyncHarness, table: String, client: String, since: String) async throws -> [Served] {
        var since = since
        var served: [Served] = []
        while true {
            let page = try await harness.pull(app, as: user, collection: table, since: since, client: client)
            #expect(page.status == .ok, "\(page.body)")
            for change in page.body["serverChanges"]?.array ?? [] {
                served.append(
                    Served(
                        id: change["eventId"]?.stringValue ?? "", record: change["id"]?.stringValue ?? "", op: change["op"]?.stringValue ?? "",
                        body: ourBody(change)))
            }
            guard page.body["hasMore"] == .bool(true), let next = page.body["syncedUntil"]?.stringValue else { return served }
            since = next
        }
    }

    @Test func clientsOfTheOriginalPullFromUsAfterTheImportAndMissNothing() async throws {
        let original = try await LegacyOriginals.syncDatabase()
        try await SyncHarness.run { harness in
            // Clients sync against the original between rounds of writes and keep their cursors.
            var cursors: [String: String] = [:]
            var received: [String: Set<Served>] = [:]
            for round in 0..<4 {
                try await Self.write(original, round: round)
                for table in Self.tables {
                    for client in Self.pullers where (round + client.count) % 2 == 0 || round == 3 {
                        let key = "\(table)/\(client)"
                        let rows = try await Self.originalPull(original, table: table, client: client, since: cursors[key] ?? "1970-01-01T00:00:00Z")
                        received[key, default: []].formUnion(rows.map(\.0))
                        cursors[key] = Self.goCursor(Int64(Date().timeIntervalSince1970 * 1_000_000))
                    }
                }
                try await Task.sleep(for: .milliseconds(20))
            }
            try await Self.write(original, round: 4)  // written after the clients' last pulls

            try await Self.importClean(original, into: harness)

            var duplicates = 0
            for table in Self.tables {
                for client in Self.pullers {
                    let key = "\(table)/\(client)"
                    let ours = try await Self.ourPull(harness, table: table, client: client, since: cursors[key] ?? "1970-01-01T00:00:00Z")
                    let wanted = try await Self.originalPull(original, table: table, client: client, since: "1970-01-01T00:00:00Z").map(\.0)
                    // Every change of another client reached this client, exactly as the original served it.
                    let reached = received[key, default: []].union(ours)
                    for change in wanted { #expect(reached.contains(change), "\(key) missed \(change)") }
                    #expect(Set(ours).isSubset(of: Set(wanted)), "\(key) got a change the original would not serve it")
                    duplicates += received[key, default: []].intersection(ours).count
                }
            }
            print("continuity: \(duplicates) duplicate deliveries at tie boundaries")
        }
    }

    /// Imports the original into the harness's database; the report must be clean.
    static func importClean(_ original: DatabaseURL, into harness: SyncHarness) async throws {
        let report = try await SyncImporter(
            options: .init(source: original, target: harness.database, quiet: true), logger: TestDatabase.logger
        ).run()
        #expect(report.isClean, "\(report.text)")
    }

    @Test func atEveryInstantOurPullReturnsAtLeastWhatTheOriginalsDid() async throws {
        let original = try await LegacyOriginals.syncDatabase()
        for round in 0..<2 { try await Self.write(original, round: round) }
        try await SyncHarness.run { harness in
            try await Self.importClean(original, into: harness)
            var duplicates = 0
            for table in Self.tables {
                for client in Self.pullers {
                    let rows = try await Self.originalPull(original, table: table, client: "-", since: "1970-01-01T00:00:00Z")
                    var instants = Set(rows.flatMap { [$0.1, $0.1 - 1] })
                    for _ in 0..<5 { instants.insert(Int64.random(in: (rows.first!.1 - 10)...(rows.last!.1 + 10))) }
                    for instant in instants.sorted() {
                        let since = Self.goCursor(instant)
                        let old = try await Self.originalPull(original, table: table, client: client, since: since)
                        let new = try await Self.ourPull(harness, table: table, client: client, since: since)
                        #expect(Set(old.map(\.0)).isSubset(of: Set(new)), "at \(since) for \(client)/\(table)")
                        // Extra deliveries are shifted ties: created_at at or before the instant.
                        let extra = Set(new).subtracting(old.map(\.0))
                        for change in extra { #expect(rows.first { $0.0 == change }.map { $0.1 <= instant } == true) }
                        duplicates += extra.count
                    }
                }
            }
            print("continuity at instants: \(duplicates) extra (duplicate) deliveries")
        }
    }
}
