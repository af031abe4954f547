import Foundation
import HTTPKit
import PostgresNIO
import TestSupport
import Testing

@testable import ManaSync

/// Members read the rows of their spaces (spaces.md section 9): whoever wrote them, while
/// they are members, with cursors that miss nothing when several members write one space.
@Suite(.timeLimit(.minutes(15))) struct SpaceReadTests {
    static let epoch = "1970-01-01T00:00:00Z"

    static func insert(_ id: String, space: String?) -> JSONValue {
        var change: [String: JSONValue] = ["table": "events", "id": .string(id), "op": "insert", "data": ["title": .string(id)]]
        if let space { change["spaceId"] = .string(space) }
        return .object(change)
    }

    static func ids(_ h: SyncHarness, _ user: String, since: String = epoch, client: String? = nil) async throws -> [String] {
        let pulled = try await h.pull("cal", as: user, collection: "events", since: since, client: client)
        #expect(pulled.status == .ok)
        return (pulled.body["serverChanges"]?.array ?? []).compactMap { $0["id"]?.stringValue }
    }

    @Test func membersReadEachOthersRecordsAndNobodyElseDoes() async throws {
        try await SyncHarness.run { h in
            h.auth.set("u_a", ["org_fam": "owner", "org_a_personal": "owner"])
            h.auth.set("u_b", ["org_fam": "member"])
            h.auth.set("u_v", ["org_fam": "viewer"])
            #expect(try await h.push("cal", as: "u_a", client: "a1", changes: [Self.insert("shared-a", space: "org_fam"), Self.insert("private-a", space: nil)]).status == .ok)
            let answer = try await h.push("cal", as: "u_b", client: "b1", changes: [Self.insert("shared-b", space: "org_fam")])
            // The push answer already carries the other member's row.
            #expect((answer.body["serverChanges"]?.array ?? []).compactMap { $0["id"]?.stringValue } == ["shared-a"])
            #expect(try await Self.ids(h, "u_a") == ["shared-a", "private-a", "shared-b"])
            #expect(try await Self.ids(h, "u_b") == ["shared-a", "shared-b"])
            #expect(try await Self.ids(h, "u_v") == ["shared-a", "shared-b"])
            #expect(try await Self.ids(h, "u_stranger") == [])
            // X-Client-Id leaves out the caller's own rows only.
            #expect(try await Self.ids(h, "u_b", client: "b1") == ["shared-a"])
            #expect(try await Self.ids(h, "u_b", client: "a1") == ["shared-a", "shared-b"])
            // The viewer reads but does not write.
            #expect(try await h.push("cal", as: "u_v", client: "v1", changes: [Self.insert("by-viewer", space: "org_fam")]).status == .forbidden)
            // Rows of a space carry it.
            let pulled = try await h.pull("cal", as: "u_b", collection: "events", since: Self.epoch)
            #expect(pulled.body["serverChanges"]?.array?.first?["spaceId"] == "org_fam")
        }
    }

    @Test func aRemovedMemberStopsReadingAtTheInvalidation() async throws {
        try await SyncHarness.run { h in
            h.auth.set("u_a", ["org_fam": "owner"])
            h.auth.set("u_b", ["org_fam": "member"])
            #expect(try await h.push("cal", as: "u_a", client: "a1", changes: [Self.insert("before", space: "org_fam")]).status == .ok)
            #expect(try await Self.ids(h, "u_b") == ["before"])
            h.auth.set("u_b", [:])
            try await h.invalidateMemberships(["u_b"])
            #expect(try await h.push("cal", as: "u_a", client: "a1", changes: [Self.insert("after", space: "org_fam")]).status == .ok)
            #expect(try await Self.ids(h, "u_b") == [])
            // An SSE stream opened now reads no row of the space either.
            let stream = SSEProbe(
                url: h.caller.baseURL + "/sync/cal/stream?collections=events&since=\(Self.epoch)",
                headers: [("Authorization", "Bearer \(try await h.token("u_b"))")])
            let events = await stream.waitFor("changes", count: 1)
            #expect(events.first?.data["changes"] == [])
            await stream.close()
        }
    }

    @Test func aMembersStreamCatchesUpWithTheSpace() async throws {
        try await SyncHarness.run { h in
            h.auth.set("u_a", ["org_fam": "owner"])
            h.auth.set("u_b", ["org_fam": "member"])
            #expect(try await h.push("cal", as: "u_a", client: "a1", changes: [Self.insert("shared", space: "org_fam")]).status == .ok)
            let stream = SSEProbe(
                url: h.caller.baseURL + "/sync/cal/stream?collections=events&since=\(Self.epoch)",
                headers: [("Authorization", "Bearer \(try await h.token("u_b"))")])
            let events = await stream.waitFor("changes", count: 1)
            #expect(events.first?.data["changes"]?.array?.compactMap { $0["id"]?.stringValue } == ["shared"])
            #expect(events.first?.data["changes"]?.array?.first?["spaceId"] == "org_fam")
            await stream.close()
        }
    }

    @Test func withoutMembershipsReadsServeOwnRowsAndHoldTheCursor() async throws {
        try await SyncHarness.run { h in
            await h.auth.server.stop()
            // Own writes go on (a push answer holds the cursor too).
            let pushed = try await h.push("cal", as: "u_new", client: "n1", since: "2020-01-01T00:00:00Z", changes: [Self.insert("mine", space: nil)])
            #expect(pushed.status == .ok && pushed.body["syncedUntil"] == "2020-01-01T00:00:00.000000Z")
            let since = "2020-01-01T00:00:00.000000Z"
            let answer = try await h.caller.sendText(
                .get, "/sync/cal/pull?collection=events&since=\(since)",
                headers: [.authorization: "Bearer \(try await h.token("u_new"))"])
            #expect(answer.status == .ok)
            #expect(answer.headers["X-Sync-Degraded"].first == "memberships")
            let body = try JSONDecoder().decode(JSONValue.self, from: Data(answer.text.utf8))
            #expect(body["serverChanges"]?.array?.count == 1)
            #expect(body["syncedUntil"] == .string(since))
            #expect(body["hasMore"] == false)
            // A new stream is refused until memberships can be resolved.
            let stream = try await h.caller.sendText(
                .get, "/sync/cal/stream?collections=events", headers: [.authorization: "Bearer \(try await h.token("u_new"))"])
            #expect(stream.status == .serviceUnavailable)
            #expect(stream.headers["Retry-After"].first == "5")
        }
    }

    /// The no-missed-change test of PushPullTests, with four members writing one space and
    /// three members reading it in small pages at the same time.
    @Test func noChangeOfTheSpaceIsMissedUnderConcurrentWriters() async throws {
        try await SyncHarness.run { h in
            let writers = ["w0", "w1", "w2", "w3"], readers = ["r0", "r1", "w0"]  // w0 reads its own rows among the space's
            for user in Set(writers + readers) { h.auth.set(user, ["org_team": "member"]) }
            let pushes = 25, batch = 20
            let expected = Set(writers.flatMap { w in (0..<pushes).flatMap { p in (0..<batch).map { "\(w)-\(p)-\($0)" } } })
            try await Flag.race(
                expected: expected,
                writers: writers.map { writer in
                    {
                        for push in 0..<pushes {
                            let changes = (0..<batch).map { Self.insert("\(writer)-\(push)-\($0)", space: "org_team") }
                            let result = try await h.push("cal", as: writer, client: "\(writer)-device", changes: changes)
                            #expect(result.status == .ok)
                        }
                    }
                },
                readers: readers.map { reader in
                    { done in
                        try await Flag.readAll(h, app: "cal", as: reader, collection: "events", client: "\(reader)-reader", limit: 13, until: done)
                    }
                })
        }
    }

    /// The interleaving behind a change missed under concurrent writers (CI, session 33): a
    /// push waits for a space head that a member's read holds, and the read answers with its
    /// clock as syncedUntil. The push must number its changes above that answer, so it reads
    /// the clock only once it holds every head (it read it before the wait, until migration 0012).
    @Test func aPushThatWaitedForAReaderNumbersItsChangesAboveTheReadersAnswer() async throws {
        try await SyncHarness.run { h in
            h.auth.set("u_w", ["org_q": "member"])
            h.auth.set("u_r", ["org_q": "member"])
            #expect(try await h.push("cal", as: "u_w", client: "w1", changes: [Self.insert("first", space: "org_q")]).status == .ok)
            let (push, answered) = try await h.withDatabase { client in
                try await client.withTransaction(logger: TestDatabase.logger) { connection in
                    // A member's read, holding the space's head.
                    try await connection.query(
                        "SELECT 1 FROM sync.space_heads WHERE space_id = 'org_q' AND app_id = 'cal' FOR SHARE", logger: TestDatabase.logger)
                    let push = Task {
                        try await h.push("cal", as: "u_w", client: "w1", changes: [Self.insert("second", space: "org_q")])
                    }
                    var waited = false
                    for _ in 0..<400 where !waited {
                        waited = try await client.query(
                            "SELECT count(*)::int FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()",
                            logger: TestDatabase.logger
                        ).decode(Int.self).reduce(0, +) > 0
                        if !waited { try await Task.sleep(for: .milliseconds(10)) }
                    }
                    #expect(waited, "the push never waited for the space's head")
                    // The read's answer, while the push waits (the page holds only "first").
                    let rows = try await connection.query(
                        "SELECT returned, synced_until, has_more FROM sync.pull_spaces('u_r', 'cal', 'events', 0, NULL, 100, '{org_q}')",
                        logger: TestDatabase.logger)
                    var answer: (Int, Int64, Bool)?
                    for try await row in rows.decode((Int, Int64, Bool).self) { answer = row }
                    let (returned, syncedUntil, hasMore) = try #require(answer)
                    #expect(returned == 1 && !hasMore)
                    return (push, syncedUntil)
                }
            }
            #expect(try await push.value.status == .ok)
            let stored = try await h.withDatabase { client in
                try await client.query("SELECT cursor FROM sync.changes WHERE record_id = 'second'", logger: TestDatabase.logger)
                    .decode(Int64.self).reduce(into: [Int64]()) { $0.append($1) }
            }
            #expect(stored.count == 1 && stored.allSatisfy { $0 > answered }, "stored at \(stored), the read answered \(answered)")
            // The reader, going on from its answer, gets the change.
            #expect(try await Self.ids(h, "u_r", since: Timestamp.format(microseconds: answered)) == ["second"])
        }
    }

    /// Rows of different heads can share a cursor: a page never ends between two of them.
    @Test func rowsSharingACursorAreNeverSplitAcrossPages() async throws {
        try await SyncHarness.run { h in
            h.auth.set("u_r", ["s1": "member", "s2": "member"])
            try await h.withDatabase { client in
                try await client.query(
                    """
                    INSERT INTO sync.changes (user_id, app_id, cursor, table_name, record_id, op, data, client_id, space_id) VALUES
                    ('u_a', 'cal', 100, 'events', 'a100', 'insert', '{}', 'c', 's1'),
                    ('u_b', 'cal', 100, 'events', 'b100', 'insert', '{}', 'c', 's2'),
                    ('u_c', 'cal', 100, 'events', 'c100', 'insert', '{}', 'c', 's1'),
                    ('u_r', 'cal', 100, 'events', 'r100', 'insert', '{}', 'c', NULL),
                    ('u_a', 'cal', 101, 'events', 'a101', 'insert', '{}', 'c', 's1'),
                    ('u_b', 'cal', 99, 'events', 'b99', 'insert', '{}', 'c', 's2')
                    """, logger: TestDatabase.logger)
                try await client.query(
                    "INSERT INTO sync.space_heads (space_id, app_id, last_cursor) VALUES ('s1', 'cal', 101), ('s2', 'cal', 100)",
                    logger: TestDatabase.logger)
                try await client.query(
                    "INSERT INTO sync.heads (user_id, app_id, last_cursor) VALUES ('u_r', 'cal', 100)", logger: TestDatabase.logger)
            }
            for limit in [1, 2, 3] {
                var since = Self.epoch
                var seen: [String] = []
                for _ in 0..<20 {
                    let page = try await h.pull("cal", as: "u_r", collection: "events", since: since, limit: limit)
                    seen += (page.body["serverChanges"]?.array ?? []).compactMap { $0["id"]?.stringValue }
                    since = page.body["syncedUntil"]?.stringValue ?? since
                    if page.body["hasMore"] != true { break }
                }
                #expect(Set(seen) == ["b99", "a100", "b100", "c100", "r100", "a101"], "limit \(limit): \(seen)")
            }
        }
    }
}
