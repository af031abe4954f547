import Foundation
import HTTPKit
import HTTPTypes
import PostgresNIO
import Testing
import TestSupport

@testable import ManaSync

/// Pushes that go to PostgreSQL together (``StatementBatches``, `sync.push_batch`) on a live
/// service with one push lane: every push is stored once and only in its own user's log, a
/// repeated idempotency key in the same batch stores once, and each answer is its own user's.
@Suite(.timeLimit(.minutes(3))) struct PushBatchTests {
    static let epoch = "1970-01-01T00:00:00.000000Z"

    @Test func pushesThatWentTogetherAreStoredOnceEachInTheirOwnLogs() async throws {
        try await SyncHarness.run(limits: { $0.lanes = 1 }) { (h: SyncHarness) async throws in
            let users = ["ann", "ben", "cy", "dot"]
            var expected: [String: Set<String>] = [:]
            var round = 0
            // Concurrent pushes until some went together (with one lane nearly every round).
            while try await h.caller.counter("sync_push_batches_total") < 3, round < 20 {
                round += 1
                let round = round
                let answers = try await withThrowingTaskGroup(of: (String, Int, JSONValue).self) { group in
                    for user in users {
                        for n in 0..<8 {
                            // Pushes 6 and 7 repeat 0 and 1 (same client, key and changes); a push carries 1 to 3 changes.
                            let changes = (0...(n % 6 % 3)).map { k in
                                Changes.insert("items", "\(user)-\(round)-\(n % 6)-\(k)", ["n": .number(Double(n % 6)), "k": .number(Double(k))])
                            }
                            group.addTask {
                                let answer = try await h.push(
                                    "batch", as: user, client: "c\(n % 6)", since: Self.epoch, changes: changes, key: "\(round)-\(n % 6)")
                                return (user, answer.status.code, answer.body)
                            }
                        }
                    }
                    return try await group.reduce(into: [(String, Int, JSONValue)]()) { $0.append($1) }
                }
                for user in users {
                    for n in 0..<6 { expected[user, default: []].formUnion((0...(n % 3)).map { "\(user)-\(round)-\(n)-\($0)" }) }
                }
                for (user, status, body) in answers {
                    #expect(status == 200, "\(body)")
                    // Each answer carries only its own user's changes.
                    let ids = body["serverChanges"]?.array?.compactMap { $0["id"]?.stringValue } ?? []
                    #expect(ids.allSatisfy { $0.hasPrefix("\(user)-") }, "\(user): \(ids)")
                }
            }
            #expect(try await h.caller.counter("sync_push_batches_total") >= 3)
            #expect(try await h.caller.counter("sync_pushes_batched_total") >= 6)
            #expect(try await h.caller.counter("sync_push_batches_refused_total") == 0)
            // Each row's stored served text is the one its columns give (the batch built it for the
            // right row): the same JSON as PostgreSQL builds from them, its event id the row's.
            let mismatched = try await h.withDatabase { client in
                try await client.query(
                    """
                    SELECT (count(*) FILTER (WHERE served::jsonb IS DISTINCT FROM
                        sync.change_json(table_name, record_id, op, data, fields, deleted_at, sync.extra_out(space_id, extra), event_id)::jsonb)
                        -- and each row its own event id (drawn once per row, not once per push)
                        + count(*) - count(DISTINCT event_id))::int
                    FROM sync.changes
                    """, logger: TestDatabase.logger
                ).decode(Int.self).reduce(0) { $0 + $1 }
            }
            #expect(mismatched == 0)
            for user in users {
                let pulled = try await h.pull("batch", as: user, collection: "items", since: Self.epoch, limit: 5_000)
                let ids = pulled.body["serverChanges"]?.array?.compactMap { $0["id"]?.stringValue } ?? []
                // Stored once each: a repeated key stored nothing the second time.
                #expect(ids.count == expected[user]?.count)
                #expect(Set(ids) == expected[user])
                #expect(pulled.body["hasMore"] == false)
            }
        }
    }

    @Test func aBatchPostgreSQLRefusesStoresEachOtherPushAlone() async throws {
        try await SyncHarness.run(limits: { $0.lanes = 1 }) { (h: SyncHarness) async throws in
            // A row PostgreSQL refuses that the service's checks let through (as a constraint
            // a later migration adds would): every batch holding it is rolled back.
            try await h.withDatabase { client in
                try await client.guardedExecute(
                    """
                    CREATE FUNCTION sync.refuse_test_rows() RETURNS trigger LANGUAGE plpgsql AS $$
                    BEGIN
                        IF NEW.record_id LIKE 'refused-%' THEN RAISE EXCEPTION 'refused by the test'; END IF;
                        RETURN NEW;
                    END
                    $$
                    """, logger: TestDatabase.logger)
                try await client.guardedExecute(
                    "CREATE TRIGGER refuse_test_rows BEFORE INSERT ON sync.changes FOR EACH ROW EXECUTE FUNCTION sync.refuse_test_rows()",
                    logger: TestDatabase.logger)
            }
            var round = 0
            var stored: Set<String> = []
            while try await h.caller.counter("sync_push_batches_refused_total") < 2, round < 20 {
                round += 1
                let round = round
                let statuses = try await withThrowingTaskGroup(of: (String, Int).self) { group in
                    for n in 0..<12 {
                        let id = n % 4 == 3 ? "refused-\(round)-\(n)" : "ok-\(round)-\(n)"
                        group.addTask {
                            (id, try await h.push("refuse", as: "u", client: "c\(n)", changes: [Changes.insert("items", id, ["n": 1])]).status.code)
                        }
                    }
                    return try await group.reduce(into: [String: Int]()) { $0[$1.0] = $1.1 }
                }
                for (id, status) in statuses {
                    #expect((status == 200) == id.hasPrefix("ok-"), "\(id): \(status)")
                    if id.hasPrefix("ok-") { stored.insert(id) }
                }
            }
            #expect(try await h.caller.counter("sync_push_batches_refused_total") >= 2)
            let pulled = try await h.pull("refuse", as: "u", collection: "items", since: Self.epoch, limit: 5_000)
            let ids = pulled.body["serverChanges"]?.array?.compactMap { $0["id"]?.stringValue } ?? []
            #expect(ids.count == stored.count)
            #expect(Set(ids) == stored)
        }
    }

    @Test func pushesIntoASharedSpaceNeverGoInABatch() async throws {
        try await SyncHarness.run(limits: { $0.lanes = 1 }) { (h: SyncHarness) async throws in
            h.auth.set("member", ["org_fam": "member"])
            var round = 0
            var spaced = 0
            // Pushes into the space beside pushes of own rows, until some of the latter went together.
            while try await h.caller.counter("sync_push_batches_total") < 2, round < 20 {
                round += 1
                let round = round
                let statuses = try await withThrowingTaskGroup(of: Int.self) { group in
                    for n in 0..<16 {
                        group.addTask {
                            let (user, data): (String, JSONValue) =
                                n % 2 == 0 ? ("member", ["spaceId": "org_fam"]) : ("own-\(n)", ["n": .number(Double(n))])
                            return try await h.push("space", as: user, client: "c\(n)", changes: [Changes.insert("items", "r\(round)-\(n)", data)])
                                .status.code
                        }
                    }
                    return try await group.reduce(into: [Int]()) { $0.append($1) }
                }
                #expect(statuses.allSatisfy { $0 == 200 })
                spaced += 8
            }
            #expect(try await h.caller.counter("sync_push_batches_total") >= 2)
            // Only the pushes of own rows went together: each space push ran alone, through
            // sync.push_spaces, which records each record's space (a batch records none).
            #expect(try await h.caller.counter("sync_pushes_batched_total") <= spaced)
            let recorded = try await h.withDatabase { client in
                try await client.query("SELECT count(*)::int FROM sync.record_spaces WHERE space_id = 'org_fam'", logger: TestDatabase.logger)
                    .decode(Int.self).reduce(0) { $0 + $1 }
            }
            #expect(recorded == spaced)
        }
    }
}
