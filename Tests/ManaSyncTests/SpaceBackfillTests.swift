import Foundation
import HTTPKit
import TestSupport
import Testing

@testable import ManaSync

/// A user who joins a space receives the rows of that space its cursors had already passed,
/// on its next reads, paged, without a client change (spaces.md section 9, "Join backfill").
@Suite(.timeLimit(.minutes(10))) struct SpaceBackfillTests {
    static let epoch = SpaceReadTests.epoch

    struct Page {
        let ids: [String]
        let syncedUntil: String
        let hasMore: Bool
    }

    static func page(_ h: SyncHarness, _ user: String, client: String, since: String, limit: Int? = nil) async throws -> Page {
        let pulled = try await h.pull("cal", as: user, collection: "events", since: since, client: client, limit: limit)
        #expect(pulled.status == .ok)
        return Page(
            ids: (pulled.body["serverChanges"]?.array ?? []).compactMap { $0["id"]?.stringValue },
            syncedUntil: pulled.body["syncedUntil"]?.stringValue ?? "", hasMore: pulled.body["hasMore"] == true)
    }

    /// Pulls pages from `since` while `hasMore`; every id received, and the last cursor.
    static func drain(_ h: SyncHarness, _ user: String, client: String, since: String, limit: Int) async throws -> (ids: [String], until: String) {
        var since = since
        var ids: [String] = []
        for _ in 0..<50 {
            let page = try await page(h, user, client: client, since: since, limit: limit)
            ids += page.ids
            since = page.syncedUntil
            if !page.hasMore { return (ids, since) }
        }
        Issue.record("the pages never ended")
        return (ids, since)
    }


    /// u_a writes `history` into org_fam; u_b, in no space yet, pushes `own` from device b0 and
    /// its device b1 reads up to there (its cursor passes the space's rows); after `meanwhile`,
    /// u_b joins org_fam. Returns b1's page from before the join.
    static func joinAfterPassing(
        _ h: SyncHarness, history: [String], own: String, meanwhile: () async throws -> Void = {}
    ) async throws -> Page {
        h.auth.set("u_a", ["org_fam": "owner"])
        #expect(try await h.push("cal", as: "u_a", client: "a1", changes: history.map { SpaceReadTests.insert($0, space: "org_fam") }).status == .ok)
        #expect(try await h.push("cal", as: "u_b", client: "b0", changes: [SpaceReadTests.insert(own, space: nil)]).status == .ok)
        let before = try await page(h, "u_b", client: "b1", since: epoch)
        #expect(before.ids == [own])
        try await meanwhile()
        h.auth.set("u_b", ["org_fam": "member"])
        try await h.invalidateMemberships(["u_b"])
        return before
    }

    @Test func aNewMemberBackfillsTheSpaceInPagesAndOnlyOnce() async throws {
        try await SyncHarness.run { h in
            let history = (0..<25).map { "s-\($0)" }
            let before = try await Self.joinAfterPassing(h, history: history, own: "own-0") { () async throws in
                #expect(try await h.push("cal", as: "u_a", client: "a1", changes: [SpaceReadTests.insert("late", space: "org_fam")]).status == .ok)
            }
            #expect(try await h.push("cal", as: "u_b", client: "b0", changes: [SpaceReadTests.insert("own-1", space: nil)]).status == .ok)

            // The first page after the join starts at the space's beginning; the cursor the
            // client gets back stays below where it was, so the client keeps pulling.
            let first = try await Self.page(h, "u_b", client: "b1", since: before.syncedUntil, limit: 10)
            #expect(first.ids == Array(history.prefix(10)))
            #expect(first.hasMore && first.syncedUntil < before.syncedUntil)
            // A lost answer costs nothing: the same request gets the same page.
            let again = try await Self.page(h, "u_b", client: "b1", since: before.syncedUntil, limit: 10)
            #expect(again.ids == first.ids && again.syncedUntil == first.syncedUntil)

            let rest = try await Self.drain(h, "u_b", client: "b1", since: first.syncedUntil, limit: 10)
            #expect(first.ids + rest.ids == history + ["late", "own-1"])
            #expect(rest.until > before.syncedUntil)
            // Done: the next reads are ordinary ones.
            #expect(try await Self.page(h, "u_b", client: "b1", since: rest.until).ids == [])
            #expect(try await h.push("cal", as: "u_a", client: "a1", changes: [SpaceReadTests.insert("next", space: "org_fam")]).status == .ok)
            let next = try await Self.page(h, "u_b", client: "b1", since: rest.until)
            #expect(next.ids == ["next"])
            #expect(try await Self.page(h, "u_b", client: "b1", since: next.syncedUntil).ids == [])

            // Another device of the same user has its own progress: it backfills too.
            let other = try await Self.drain(h, "u_b", client: "b2", since: before.syncedUntil, limit: 7)
            #expect(other.ids == history + ["late", "own-1", "next"])
            // A device starting from scratch reads everything once, without a backfill.
            let fresh = try await Self.drain(h, "u_b", client: "b3", since: Self.epoch, limit: 1_000)
            #expect(fresh.ids == history + ["own-0", "late", "own-1", "next"])
        }
    }

    @Test func aBackfillRestartsWhenTheClientJumpsAheadWithoutIt() async throws {
        try await SyncHarness.run { h in
            let before = try await Self.joinAfterPassing(h, history: ["old"], own: "own")
            let first = try await Self.page(h, "u_b", client: "b1", since: before.syncedUntil)
            #expect(first.ids == ["old"] && first.hasMore)
            // The answer is lost, and a push answer moves the client's cursor past the backfill:
            // the backfill starts again instead of ending unseen.
            let pushed = try await h.push("cal", as: "u_b", client: "b1", since: before.syncedUntil, changes: [SpaceReadTests.insert("mine", space: nil)])
            let jumped = pushed.body["syncedUntil"]?.stringValue ?? ""
            #expect(jumped > before.syncedUntil)
            let restarted = try await Self.drain(h, "u_b", client: "b1", since: jumped, limit: 100)
            #expect(restarted.ids.contains("old"))
        }
    }

    @Test func aMembersStreamBackfillsTheSpaceItJoined() async throws {
        try await SyncHarness.run { h in
            let history = (0..<12).map { "s-\($0)" }
            let before = try await Self.joinAfterPassing(h, history: history, own: "own")
            let stream = SSEProbe(
                url: h.caller.baseURL + "/sync/cal/stream?collections=events&since=\(before.syncedUntil)",
                headers: [("Authorization", "Bearer \(try await h.token("u_b"))"), ("X-Client-Id", "b1")])
            // The catch-up pages on until a page says there is no more.
            let deadline = ContinuousClock.now + .seconds(10)
            while ContinuousClock.now < deadline, !stream.received.contains(where: { $0.name == "changes" && $0.data["hasMore"] == false }) {
                try await Task.sleep(for: .milliseconds(10))
            }
            let ids = stream.received.filter { $0.name == "changes" }.flatMap { ($0.data["changes"]?.array ?? []).compactMap { $0["id"]?.stringValue } }
            #expect(ids == history)
            await stream.close()
        }
    }
}
