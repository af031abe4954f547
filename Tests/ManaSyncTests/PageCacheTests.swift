import Foundation
import HTTPKit
import HTTPTypes
import Testing
import TestSupport

@testable import ManaSync

extension JSONValue {
    fileprivate var elements: [JSONValue]? {
        if case .array(let elements) = self { return elements }
        return nil
    }
}

/// The page cache (``LogSegments``) on a live service: pages cut from memory are byte for byte
/// the pages PostgreSQL builds, for pulls and push answers, with tables and clients filtered, and
/// a catch-up through them misses no change pushed after the stretch was read.
@Suite(.timeLimit(.minutes(3))) struct PageCacheTests {
    /// A `since` before every change of a test (which takes seconds) and recent enough for the
    /// page cache, which cuts pages only after recent cursors (``LogSegments/Settings/recent``:
    /// compaction never folds those).
    static var epoch: String { Timestamp.format(microseconds: Timestamp.nowMicroseconds() - 30_000_000) }

    @Test func pagesFromMemoryAreThePagesPostgreSQLBuilds() async throws {
        try await SyncHarness.run(pages: { $0.pushAnswer = 100 }) { (h: SyncHarness) async throws in
            // 3,000 changes in two tables: A pushes 2,000, B 1,000.
            for (batch, client) in ["A", "B", "A"].enumerated() {
                let changes: [JSONValue] = (0..<1_000).map { n in
                    Changes.insert(n % 2 == 0 ? "items" : "tags", "r\(batch)-\(n)", ["n": .number(Double(n)), "by": .string(client)])
                }
                // Answers of nothing (since is ahead of every change): no full page yet, no demand.
                #expect(try await h.push("app", as: "hot", client: client, since: "2100-01-01T00:00:00Z", changes: changes).status == .ok)
            }
            let token = try await h.token("hot")
            @Sendable func pull(since: String, client: String, limit: Int) async throws -> String {
                let encoded = since.addingPercentEncoding(withAllowedCharacters: .alphanumerics)!
                let answer = try await h.caller.sendText(
                    .get, "/sync/app/pull?collection=items&since=\(encoded)&limit=\(limit)",
                    headers: [.authorization: "Bearer \(token)", .clientID: client])
                #expect(answer.status == .ok)
                return answer.text
            }
            @Sendable func pushAnswer(client: String) async throws -> String {
                let answer = try await h.caller.sendText(
                    .post, "/sync/app", headers: [.authorization: "Bearer \(token)", .contentType: "application/json"],
                    body: #"{"clientId":"\#(client)","since":"\#(Self.epoch)","changes":[]}"#)
                #expect(answer.status == .ok)
                return answer.text
            }
            @Sendable func hits() async throws -> Int { try await h.caller.counter("sync_page_cache_hits_total") }
            // Built by PostgreSQL: nothing is held yet.
            let pulled = try await pull(since: Self.epoch, client: "C", limit: 100)
            let ownLeftOut = try await pull(since: Self.epoch, client: "A", limit: 300)
            let answered = try await pushAnswer(client: "A")
            #expect(try await hits() == 0)
            #expect(try JSONParser.parse(answered)["serverChanges"]?.elements?.count == 100)

            // Overlapping pages make the service read the stretch; then pages come from memory.
            try await eventually(within: .seconds(60)) {
                #expect(try await pull(since: Self.epoch, client: "C", limit: 100) == pulled)
                return try await hits() > 0
            }
            let before = try await hits()
            #expect(try await pull(since: Self.epoch, client: "A", limit: 300) == ownLeftOut)
            #expect(try await pushAnswer(client: "A") == answered)
            #expect(try await hits() == before + 2)

            // A change stored after the stretch was read: a catch-up through pages cut from
            // memory reaches it (the last, partial page comes from PostgreSQL).
            #expect(try await h.push("app", as: "hot", client: "B", changes: [Changes.insert("items", "late", ["n": 1])]).status == .ok)
            var since = Self.epoch
            var ids: [String] = []
            while true {
                let page = try JSONParser.parse(try await pull(since: since, client: "C", limit: 100))
                ids += page["serverChanges"]?.elements?.compactMap { $0["id"]?.stringValue } ?? []
                since = try #require(page["syncedUntil"]?.stringValue)
                if page["hasMore"] == false { break }
            }
            #expect(ids.count == 1_501 && Set(ids).count == 1_501 && ids.last == "late")
            #expect(try await hits() > before + 2)

            // A push answer of this busy log that no stretch holds (from the head) comes from
            // PostgreSQL: it covers the push, and the next client's answer has the change.
            let fromB = try await h.push("app", as: "hot", client: "B", since: since, changes: [Changes.insert("items", "late2", ["n": 2])])
            #expect(fromB.body["serverChanges"] == [] && fromB.body["hasMore"] == false)
            let fromA = try await h.push("app", as: "hot", client: "A", since: since, changes: [Changes.insert("tags", "late3", ["n": 3])])
            #expect(fromA.body["serverChanges"]?.elements?.compactMap { $0["id"]?.stringValue } == ["late2"])
            let afterB = try #require(fromB.body["syncedUntil"]?.stringValue)
            let afterA = try #require(fromA.body["syncedUntil"]?.stringValue)
            #expect(afterB > since && afterA > afterB)
        }
    }

    @Test func noCacheMeansEveryPageFromPostgreSQL() async throws {
        try await SyncHarness.run(pages: { $0.cacheBytes = 0 }) { (h: SyncHarness) async throws in
            let changes: [JSONValue] = (0..<300).map { Changes.insert("items", "r\($0)", ["n": .number(Double($0))]) }
            #expect(try await h.push("app", as: "cold", client: "A", changes: changes).status == .ok)
            for _ in 0..<10 {
                let page = try await h.pull("app", as: "cold", collection: "items", since: Self.epoch, client: "C", limit: 50)
                #expect(page.body["serverChanges"]?.elements?.count == 50)
            }
            let metrics = try await h.caller.sendText(.get, "/metrics").text
            #expect(!metrics.contains("sync_page_cache_reads_total") && !metrics.contains("sync_page_cache_hits_total"))
        }
    }
}
