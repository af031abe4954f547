import Foundation
import HTTPKit
import HTTPTypes
import PostgresNIO
import Testing
import TestSupport

@testable import ManaSync

@Suite(.timeLimit(.minutes(3))) struct PushPullTests {
    static let epoch = "1970-01-01T00:00:00.000000Z"

    @Test func roundTripAsAClientDoesIt() async throws {
        try await SyncHarness.run { (h: SyncHarness) async throws in
            let changes: [JSONValue] = [
                Changes.insert("todos", "t1", ["title": "Buy milk", "done": false]),
                Changes.update("todos", "t1", "title", "Buy oat milk"),
                Changes.delete("notes", "n1", at: "2024-01-01T10:07:00Z"),
                Changes.delete("notes", "n2"),
            ]
            let pushed = try await h.push("todo", as: "alice", client: "A", changes: changes)
            #expect(pushed.status == .ok)
            #expect(pushed.body["serverChanges"] == [])
            #expect(pushed.body["conflicts"] == [])
            #expect(pushed.body["hasMore"] == false)
            let cursor = try #require(pushed.body["syncedUntil"]?.stringValue)
            #expect(cursor.count == 27 && cursor.hasSuffix("Z"))

            let todos = try await h.pull("todo", as: "alice", collection: "todos", since: Self.epoch, client: "B")
            #expect(todos.body["serverChanges"]?.withoutEventIDs == .array(Array(changes.prefix(2))))
            let notes = try await h.pull("todo", as: "alice", collection: "notes", since: Self.epoch, client: "B")
            #expect(notes.body["serverChanges"]?.withoutEventIDs == .array(Array(changes.suffix(2))))
            #expect(notes.body["syncedUntil"]?.stringValue == cursor)
            let own = try await h.pull("todo", as: "alice", collection: "todos", since: Self.epoch, client: "A")
            #expect(own.body["serverChanges"] == [])

            let fromB = Changes.update("todos", "t1", "done", true, at: "2024-01-01T10:09:00Z")
            let pushedB = try await h.push("todo", as: "alice", client: "B", since: cursor, changes: [fromB])
            #expect(pushedB.body["serverChanges"] == [])
            let next = try await h.push("todo", as: "alice", client: "A", since: cursor, changes: [])
            #expect(next.body["serverChanges"]?.withoutEventIDs == [fromB])

            let text = try await h.caller.sendText(.get, "/metrics").text
            #expect(text.contains("sync_changes_stored_total 5"), "\(text)")
            #expect(text.contains(#"http_request_duration_seconds_count{method="POST",route="/sync/{appId}"} 3"#))
        }
    }

    /// Pages are written from the stored JSON text without re-encoding: names with every
    /// character JSON must escape, and values of every JSON type, come back exactly as sent.
    @Test func storedTextComesBackExactlyAsSent() async throws {
        try await SyncHarness.run { (h: SyncHarness) async throws in
            let awkward = "q\"b\\n\nr\rt\tc\u{01}\u{1F}é😀/"
            let changes: [JSONValue] = [
                Changes.insert(awkward, awkward, [awkward: "x", "n": .number(1.5), "big": .number(12345678901234), "nested": ["a": [.null, true, "é"]]]),
                Changes.update(awkward, awkward, awkward, ["deep": [1, 2, ["x": .null]]]),
                Changes.delete(awkward, "d\u{7F}", at: "2024-01-01T10:07:00.5+02:00"),
            ]
            #expect(try await h.push("todo", as: "alice", client: "A", changes: changes).status == .ok)
            let raw = try await h.caller.sendText(
                .get, "/sync/todo/pull?collection=\(awkward.addingPercentEncoding(withAllowedCharacters: .alphanumerics)!)&since=\(Self.epoch)",
                headers: [.authorization: "Bearer \(try await h.token("alice"))"])
            #expect(raw.status == .ok, "\(raw.text)")
            #expect((try? JSONSerialization.jsonObject(with: Data(raw.text.utf8))) != nil, "not valid JSON: \(raw.text)")
            let pulled = try JSONDecoder().decode(JSONValue.self, from: Data(raw.text.utf8))
            #expect(pulled["serverChanges"]?.withoutEventIDs == .array(changes))
        }
    }

    /// A push stores each change's served text (migration 0012), and rows without it (stored
    /// before, or imported) are built on the fly: both give the same page. The same JSON, not
    /// the same bytes: since migration 0017 the service writes a push's served text (compact,
    /// its own key order), while PostgreSQL builds the text of older rows from jsonb.
    @Test func storedServedTextAndTheTextBuiltOnTheFlyAreTheSame() async throws {
        try await SyncHarness.run { (h: SyncHarness) async throws in
            let awkward = "q\"b\\n\nr\u{01}é😀/"
            let withExtra: JSONValue = ["table": "todos", "id": "x1", "op": "insert", "data": ["title": "kept keys"], "actor": "device 7"]
            let changes: [JSONValue] = [
                Changes.insert("todos", awkward, [awkward: "x", "n": .number(1.5), "nested": ["a": [.null, true, "é"]]]),
                Changes.update("todos", awkward, "title", ["deep": [1, 2, ["x": .null]]]),
                Changes.delete("todos", "d1", at: "2024-01-01T10:07:00.5+02:00"),
                Changes.delete("todos", "d2"),
                withExtra,
            ]
            #expect(try await h.push("todo", as: "alice", client: "A", changes: changes).status == .ok)
            let headers: HTTPFields = [.authorization: "Bearer \(try await h.token("alice"))"]
            @Sendable func page() async throws -> String {
                let answer = try await h.caller.sendText(.get, "/sync/todo/pull?collection=todos&since=\(Self.epoch)", headers: headers)
                #expect(answer.status == .ok, "\(answer.text)")
                return answer.text
            }
            let stored = try await page()
            let decoded = try JSONDecoder().decode(JSONValue.self, from: Data(stored.utf8))
            #expect(decoded["serverChanges"]?.withoutEventIDs == .array(changes))
            let rebuilt = try await TestDatabase.withClient(h.database) { client in
                let counts = try await client.query(
                    "SELECT count(*) FILTER (WHERE served IS NOT NULL)::int, count(*)::int FROM sync.changes WHERE user_id = 'alice'",
                    logger: TestDatabase.logger)
                for try await (served, all) in counts.decode((Int, Int).self) {
                    #expect(all == changes.count)
                    #expect(served == all, "the push stores every change's served text")
                }
                let cleared = try await client.query(
                    "WITH c AS (UPDATE sync.changes SET served = NULL WHERE user_id = 'alice' RETURNING 1) SELECT count(*)::int FROM c",
                    logger: TestDatabase.logger)
                for try await count in cleared.decode(Int.self) { #expect(count == changes.count) }
                return try await page()
            }
            #expect(try JSONDecoder().decode(JSONValue.self, from: Data(rebuilt.utf8)) == decoded)
        }
    }

    @Test func emptyHistoryAnswersTheEpoch() async throws {
        try await SyncHarness.run { (h: SyncHarness) async throws in
            let pulled = try await h.pull("todo", as: "nobody", collection: "todos", since: "2024-01-01T00:00:00+02:00")
            #expect(pulled.status == .ok)
            #expect(pulled.body["syncedUntil"] == .string(Self.epoch))
        }
    }

    @Test func pullPagesWithHasMore() async throws {
        try await SyncHarness.run { (h: SyncHarness) async throws in
            let changes = (0..<7).map { Changes.insert("items", "i\($0)", ["n": .number(Double($0))]) }
            try await h.push("app", as: "pager", client: "A", changes: changes)
            var since = Self.epoch
            var seen: [String] = []
            var pages = 0
            while true {
                let page = try await h.pull("app", as: "pager", collection: "items", since: since, limit: 3)
                seen += page.body["serverChanges"]?.array?.compactMap { $0["id"]?.stringValue } ?? []
                since = page.body["syncedUntil"]?.stringValue ?? since
                pages += 1
                if page.body["hasMore"] != true { break }
            }
            #expect(seen == (0..<7).map { "i\($0)" })
            #expect(pages == 3)
        }
    }

    /// Smaller page limits (`SYNC_PUSH_PAGE_LIMIT`, `SYNC_PULL_PAGE_DEFAULT`) answer fewer
    /// changes with `hasMore`, and a client paging on with `syncedUntil` still gets every change once.
    @Test func smallerPageLimitsPageOnWithoutLosingAChange() async throws {
        try await SyncHarness.run(pages: { $0.pushAnswer = 2; $0.pullDefault = 3 }) { (h: SyncHarness) async throws in
            let changes = (0..<7).map { Changes.insert("items", "i\($0)", ["n": .number(Double($0))]) }
            try await h.push("app", as: "pager", client: "A", changes: changes)
            let answer = try await h.push("app", as: "pager", client: "B", since: Self.epoch, changes: [])
            #expect(answer.body["serverChanges"]?.array?.compactMap { $0["id"]?.stringValue } == ["i0", "i1"])
            #expect(answer.body["hasMore"] == true)
            var since = answer.body["syncedUntil"]?.stringValue ?? Self.epoch
            var seen = ["i0", "i1"]
            var pages = 0
            while true {
                let page = try await h.pull("app", as: "pager", collection: "items", since: since)
                let ids = page.body["serverChanges"]?.array?.compactMap { $0["id"]?.stringValue } ?? []
                #expect(ids.count <= 3)
                seen += ids
                since = page.body["syncedUntil"]?.stringValue ?? since
                pages += 1
                if page.body["hasMore"] != true { break }
            }
            #expect(seen == (0..<7).map { "i\($0)" })
            #expect(pages == 2)
            // An explicit limit still wins over the default.
            let all = try await h.pull("app", as: "pager", collection: "items", since: Self.epoch, limit: 10)
            #expect(all.body["serverChanges"]?.array?.count == 7)
        }
    }

    /// A full page has more only when a change it would serve remains (migration 0013's probe
    /// past the page): the reader's own changes and other tables' do not count, a page that
    /// ends exactly at the last change has none, and then `syncedUntil` is the head.
    @Test func aFullPageHasMoreOnlyWhenAChangeItWouldServeRemains() async throws {
        try await SyncHarness.run { (h: SyncHarness) async throws in
            try await h.push("app", as: "edge", client: "A", changes: (0..<3).map { Changes.insert("items", "a\($0)", ["n": 1]) })
            try await h.push("app", as: "edge", client: "A", changes: [Changes.insert("other", "o0", ["n": 1])])
            let last = try await h.push("app", as: "edge", client: "B", changes: (0..<2).map { Changes.insert("items", "b\($0)", ["n": 1]) })
            let head = try #require(last.body["syncedUntil"]?.stringValue)
            func page(client: String, limit: Int) async throws -> (ids: [String], hasMore: JSONValue?, syncedUntil: String?) {
                let body = try await h.pull("app", as: "edge", collection: "items", since: Self.epoch, client: client, limit: limit).body
                return (body["serverChanges"]?.array?.compactMap { $0["id"]?.stringValue } ?? [], body["hasMore"],
                        body["syncedUntil"]?.stringValue)
            }
            // Full for B; what remains of the table is B's own: nothing more, up to the head.
            let forB = try await page(client: "B", limit: 3)
            #expect(forB.ids == ["a0", "a1", "a2"] && forB.hasMore == false && forB.syncedUntil == head)
            // Full for C with B's left: more, up to the page's last change.
            let forC = try await page(client: "C", limit: 3)
            #expect(forC.ids == ["a0", "a1", "a2"] && forC.hasMore == true && forC.syncedUntil != head)
            #expect(try await page(client: "C", limit: 4).hasMore == true)
            // Exactly every change of the table: full, and nothing more.
            let all = try await page(client: "C", limit: 5)
            #expect(all.ids == ["a0", "a1", "a2", "b0", "b1"] && all.hasMore == false && all.syncedUntil == head)
        }
    }

    /// A push's answer page holds the other clients' changes between its `since` and its own
    /// rows, and is `[]` with `syncedUntil` at the push's own last change when there are none
    /// (migration 0019 reads the page only when some change lies there).
    @Test func aPushAnswersOthersChangesSinceItsCursorOrNoneUpToItsOwnLastChange() async throws {
        try await SyncHarness.run { (h: SyncHarness) async throws in
            func ids(_ answer: JSONValue) -> [String] { answer["serverChanges"]?.array?.compactMap { $0["id"]?.stringValue } ?? [] }
            func head() async throws -> String {
                let pulled = try await h.pull("answer", as: "amy", collection: "rows", since: Self.epoch, client: "reader")
                return try #require(pulled.body["syncedUntil"]?.stringValue)
            }
            let a1 = try await h.push("answer", as: "amy", client: "A", since: Self.epoch, changes: [
                Changes.insert("rows", "a1", ["n": 1]), Changes.insert("rows", "a2", ["n": 2]),
            ])
            #expect(ids(a1.body) == [])
            let afterA1 = try #require(a1.body["syncedUntil"]?.stringValue)
            #expect(afterA1 == (try await head()))
            // B from the start hears A's two changes; its syncedUntil is its own change.
            let b1 = try await h.push("answer", as: "amy", client: "B", since: Self.epoch, changes: [Changes.insert("rows", "b1", ["n": 3])])
            #expect(ids(b1.body) == ["a1", "a2"])
            let afterB1 = try #require(b1.body["syncedUntil"]?.stringValue)
            #expect(afterB1 == (try await head()) && afterB1 > afterA1)
            // A from its last answer hears B's change only.
            let a2 = try await h.push("answer", as: "amy", client: "A", since: afterA1, changes: [Changes.insert("rows", "a3", ["n": 4])])
            #expect(ids(a2.body) == ["b1"])
            let afterA2 = try #require(a2.body["syncedUntil"]?.stringValue)
            #expect(afterA2 == (try await head()) && afterA2 > afterB1)
            // Nothing new from others: an empty page, synced up to A's own new change.
            let a3 = try await h.push("answer", as: "amy", client: "A", since: afterA2, changes: [Changes.insert("rows", "a4", ["n": 5])])
            #expect(ids(a3.body) == [])
            #expect(a3.body["hasMore"] == false)
            let afterA3 = try #require(a3.body["syncedUntil"]?.stringValue)
            #expect(afterA3 == (try await head()) && afterA3 > afterA2)
            // A cursor ahead of the log (a client's clock): no page, synced up to the push's change.
            let a4 = try await h.push("answer", as: "amy", client: "A", since: "2999-01-01T00:00:00.000000Z", changes: [
                Changes.insert("rows", "a5", ["n": 6]),
            ])
            #expect(ids(a4.body) == [])
            #expect(a4.body["syncedUntil"]?.stringValue == (try await head()))
            // B from its last answer hears A's three changes since, in order, not its own.
            let b2 = try await h.push("answer", as: "amy", client: "B", since: afterB1, changes: [Changes.insert("rows", "b2", ["n": 7])])
            #expect(ids(b2.body) == ["a3", "a4", "a5"])
        }
    }

    /// Writers that follow their push answers (each push `since` the last answer's
    /// `syncedUntil`, as a client that only pushes does) hear every other writer's change exactly
    /// once and never their own, however their pushes interleave: whether a push's page was read
    /// or found empty, none is skipped.
    @Test func writersFollowingTheirPushAnswersHearEveryOtherChangeOnce() async throws {
        try await SyncHarness.run { (h: SyncHarness) async throws in
            let writers = 3, pushes = 25, batch = 4
            let heard = try await withThrowingTaskGroup(of: (Int, [String], String).self) { group in
                for writer in 0..<writers {
                    group.addTask {
                        var since = Self.epoch
                        var heard: [String] = []
                        for push in 0..<pushes {
                            let changes = (0..<batch).map { Changes.insert("rows", "w\(writer)-p\(push)-\($0)", ["w": .number(Double(writer))]) }
                            let answer = try await h.push("follow", as: "fay", client: "writer-\(writer)", since: since, changes: changes)
                            #expect(answer.status == .ok)
                            #expect(answer.body["hasMore"] == false)
                            heard += answer.body["serverChanges"]?.array?.compactMap { $0["id"]?.stringValue } ?? []
                            let next = try #require(answer.body["syncedUntil"]?.stringValue)
                            #expect(next > since)
                            since = next
                        }
                        return (writer, heard, since)
                    }
                }
                return try await group.reduce(into: [(Int, [String], String)]()) { $0.append($1) }
            }
            for (writer, early, since) in heard {
                // What the others wrote after this writer's last push: one more push without changes.
                let last = try await h.push("follow", as: "fay", client: "writer-\(writer)", since: since, changes: [])
                let all = early + (last.body["serverChanges"]?.array?.compactMap { $0["id"]?.stringValue } ?? [])
                let expected = (0..<writers).filter { $0 != writer }.flatMap { w in
                    (0..<pushes).flatMap { p in (0..<batch).map { "w\(w)-p\(p)-\($0)" } }
                }
                #expect(all.count == expected.count, "writer \(writer) heard \(all.count) changes")
                let missed = Set(expected).subtracting(all).sorted()
                #expect(missed.isEmpty, "writer \(writer) missed \(missed.count), e.g. \(missed.prefix(3))")
                #expect(Set(all).isSubset(of: expected), "writer \(writer) heard its own or unknown changes")
            }
        }
    }

    @Test func noChangeIsEverMissed() async throws {
        try await SyncHarness.run { (h: SyncHarness) async throws in
            // Large batches keep each writer's transaction open a while after its cursors are
            // taken: a wall-clock syncedUntil loses changes in that window.
            let writers = 4, pushesPerWriter = 30, batch = 40
            let expected = Set((0..<writers).flatMap { w in (0..<pushesPerWriter).flatMap { p in (0..<batch).map { "w\(w)-p\(p)-\($0)" } } })
            try await Flag.race(
                expected: expected,
                writers: (0..<writers).map { writer in
                    {
                        var since = Self.epoch
                        for push in 0..<pushesPerWriter {
                            let changes = (0..<batch).map { Changes.insert("rows", "w\(writer)-p\(push)-\($0)", ["w": .number(Double(writer))]) }
                            let result = try await h.push("race", as: "racer", client: "writer-\(writer)", since: since, changes: changes)
                            #expect(result.status == .ok)
                            since = result.body["syncedUntil"]?.stringValue ?? since
                        }
                    }
                },
                readers: (0..<3).map { reader in
                    { done in
                        try await Flag.readAll(h, app: "race", as: "racer", collection: "rows", client: "reader-\(reader)", limit: 1000, until: done)
                    }
                })
        }
    }

    @Test func anInvalidChangeStoresNothingAndNamesItsIndex() async throws {
        try await SyncHarness.run { (h: SyncHarness) async throws in
            let changes: [JSONValue] = [
                Changes.insert("todos", "ok-1", ["a": 1]),
                ["table": "todos", "id": "bad", "op": "upsert"],
                Changes.insert("todos", "ok-2", ["a": 2]),
            ]
            let result = try await h.push("todo", as: "val", client: "A", changes: changes)
            #expect(result.status == .badRequest)
            #expect(result.body["error"] == "bad_request")
            #expect(result.body["details"]?["index"] == 1)
            #expect(result.body["details"]?["field"] == "op")
            let pulled = try await h.pull("todo", as: "val", collection: "todos", since: Self.epoch)
            #expect(pulled.body["serverChanges"] == [])
        }
    }

    @Test(arguments: [
        (["table": "t", "id": "x", "op": "insert"] as JSONValue, "data"),
        (["table": "t", "id": "x", "op": "update", "fields": []] as JSONValue, "fields"),
        (["table": "t", "id": "x", "op": "update", "fields": ["f": ["value": 1, "updatedAt": "yesterday"]]] as JSONValue, "fields.f.updatedAt"),
        (["id": "x", "op": "delete"] as JSONValue, "table"),
        (["table": "t", "op": "delete"] as JSONValue, "id"),
        (["table": "t", "id": "x", "op": "delete", "deletedAt": "soon"] as JSONValue, "deletedAt"),
        (["table": "", "id": "x", "op": "delete"] as JSONValue, "table"),
    ])
    func eachKindOfBadChangeIs400NamingTheField(change: JSONValue, field: String) async throws {
        try await SyncHarness.run { (h: SyncHarness) async throws in
            let result = try await h.push("todo", as: "val", client: "A", changes: [Changes.insert("t", "fine", [:]), change])
            #expect(result.status == .badRequest)
            #expect(result.body["details"]?["index"] == 1)
            #expect(result.body["details"]?["field"] == .string(field), "\(result.body)")
            #expect(result.body["message"]?.stringValue?.contains("changes[1]") == true)
        }
    }

    @Test func badRequestsAre400Or413() async throws {
        try await SyncHarness.run(limits: { $0.maximumChanges = 5_000; $0.maximumBodyBytes = 10 << 20 }) { (h: SyncHarness) async throws in
            #expect(try await h.call(.post, "/sync/todo", as: "u", body: "{not json").status == .badRequest)
            #expect(try await h.call(.post, "/sync/todo", as: "u", body: #"{"changes": []}"#).body["details"]?["field"] == "clientId")
            #expect(try await h.call(.post, "/sync/-bad", as: "u", body: #"{"clientId": "A", "changes": []}"#).status == .badRequest)
            #expect(try await h.call(.post, "/sync/\(String(repeating: "a", count: 65))", as: "u", body: #"{"clientId": "A", "changes": []}"#).status == .badRequest)
            let badSince = try await h.push("todo", as: "u", client: "A", since: "not-a-time", changes: [])
            #expect(badSince.body["details"]?["field"] == "since")
            let numericSince = try await h.call(.post, "/sync/todo", as: "u", body: #"{"clientId": "A", "since": 17, "changes": []}"#)
            #expect(numericSince.body["details"]?["field"] == "since")
            #expect(try await h.pull("todo", as: "u", collection: "t", since: "garbage").status == .badRequest)
            #expect(try await h.call(.get, "/sync/todo/pull?since=\(Self.epoch)", as: "u").body["details"]?["field"] == "collection")
            #expect(try await h.call(.get, "/sync/todo/pull?collection=t", as: "u").body["details"]?["field"] == "since")
            #expect(try await h.call(.get, "/sync/todo/pull?collection=t&since=\(Self.epoch)", as: nil).status == .unauthorized)

            let many = (0...5_000).map { Changes.delete("t", "r\($0)") }
            #expect(try await h.push("todo", as: "u", client: "A", changes: many).status == .contentTooLarge)
            let huge = #"{"clientId": "A", "changes": [{"table": "t", "id": "x", "op": "insert", "data": {"blob": ""# + String(repeating: "x", count: 10 * 1024 * 1024) + #""}}]}"#
            #expect(try await h.call(.post, "/sync/todo", as: "u", body: huge).status == .contentTooLarge)
        }
    }

    @Test func usersNeverSeeEachOthersChanges() async throws {
        try await SyncHarness.run { (h: SyncHarness) async throws in
            try await h.push("todo", as: "alice", client: "A", changes: [Changes.insert("todos", "secret", ["x": 1])])
            let asBob = try await h.pull("todo", as: "bob", collection: "todos", since: Self.epoch)
            #expect(asBob.body["serverChanges"] == [])
            #expect(asBob.body["syncedUntil"] == .string(Self.epoch))
            let bobPush = try await h.push("todo", as: "bob", client: "B", changes: [])
            #expect(bobPush.body["serverChanges"] == [])
            // Row-level security: a query without a user filter, in a transaction set to bob.
            let rows = try await h.withDatabase { client in
                try await ChangeLogRepository(client: client, logger: TestDatabase.logger).withUserTransaction("bob") { connection in
                    try await connection.query("SELECT record_id FROM sync.changes", logger: TestDatabase.logger)
                        .decode(String.self).reduce(into: [String]()) { $0.append($1) }
                }
            }
            #expect(rows.isEmpty)
            let alices = try await h.withDatabase { client in
                try await ChangeLogRepository(client: client, logger: TestDatabase.logger).withUserTransaction("alice") { connection in
                    try await connection.query("SELECT record_id FROM sync.changes", logger: TestDatabase.logger)
                        .decode(String.self).reduce(into: [String]()) { $0.append($1) }
                }
            }
            #expect(alices == ["secret"])
        }
    }

    @Test func aRepeatedIdempotencyKeyStoresOnce() async throws {
        try await SyncHarness.run { (h: SyncHarness) async throws in
            let change = [Changes.insert("todos", "once", ["x": 1])]
            let first = try await h.push("todo", as: "idem", client: "A", changes: change, key: "push-1")
            let second = try await h.push("todo", as: "idem", client: "A", changes: change, key: "push-1")
            #expect(first.status == .ok && second.status == .ok)
            #expect(first.body["syncedUntil"] == second.body["syncedUntil"])
            let pulled = try await h.pull("todo", as: "idem", collection: "todos", since: Self.epoch)
            #expect(pulled.body["serverChanges"]?.array?.count == 1)
        }
    }
}

/// A one-way flag shared between tasks.
actor Flag {
    private(set) var isSet = false
    func set() { isSet = true }

    /// Runs `writers` and `readers` at once; once every writer is done the readers catch up
    /// and each must have seen exactly `expected`.
    static func race(
        expected: Set<String>, writers: [@Sendable () async throws -> Void], readers: [@Sendable (Flag) async throws -> Set<String>]
    ) async throws {
        let done = Flag()
        try await withThrowingTaskGroup(of: Set<String>?.self) { group in
            for writer in writers {
                group.addTask {
                    try await writer()
                    return nil
                }
            }
            for reader in readers { group.addTask { try await reader(done) } }
            var writersLeft = writers.count
            while let result = try await group.next() {
                if let seen = result {
                    #expect(seen == expected, "a reader missed \(expected.subtracting(seen).count) changes")
                } else {
                    writersLeft -= 1
                    if writersLeft == 0 { await done.set() }
                }
            }
        }
    }

    /// A reader paging a table from the epoch, as a client does, until `done` is set and it
    /// has caught up: the ids of every change it saw.
    static func readAll(
        _ h: SyncHarness, app: String, as user: String, collection: String, client: String, limit: Int, until done: Flag
    ) async throws -> Set<String> {
        var since = "1970-01-01T00:00:00Z"
        var seen = Set<String>()
        while true {
            try Task.checkCancellation()
            let finished = await done.isSet
            let page = try await h.pull(app, as: user, collection: collection, since: since, client: client, limit: limit)
            #expect(page.status == .ok)
            let changes = page.body["serverChanges"]?.array ?? []
            for change in changes {
                if let id = change["id"]?.stringValue { seen.insert(id) }
            }
            since = page.body["syncedUntil"]?.stringValue ?? since
            if finished, page.body["hasMore"] != true { return seen }
            // A reader that is caught up polls like a client does, not in a tight loop.
            if changes.isEmpty { try await Task.sleep(for: .milliseconds(20)) }
        }
    }
}

@Suite struct SyncUnstorableTextTests {
    @Test func aNulCharacterInAPushIs400AndStoresNothing() async throws {
        try await SyncHarness.run { (h: SyncHarness) async throws in
            let pushed = try await h.push("todo", as: "nul", client: "A", changes: [Changes.insert("t", "1", ["text": "a\u{0}b"])])
            #expect(pushed.status == .badRequest, "\(pushed.body)")
            #expect(try await h.pull("todo", as: "nul", collection: "t", since: "1970-01-01T00:00:00Z").body["serverChanges"] == [])
        }
    }
}
