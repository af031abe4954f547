import NIOCore
import Testing

@testable import ManaSync

extension LogSegments.Cut {
    /// The changes array as the answer writes it.
    fileprivate var text: String {
        var out = ByteBuffer()
        write(into: &out)
        return String(buffer: out)
    }
}

/// The page cache's logic (``LogSegments``) without a database: pages cut from a segment
/// against the page PostgreSQL's `sync.page_json` defines (the first `limit` matching changes
/// after `since`, `syncedUntil` the last one's cursor, `hasMore` only when one more matches),
/// when a segment is read, and what it holds.
@Suite struct LogSegmentsTests {
    struct Row {
        let cursor: Int64
        let table: String
        let client: String
        var text: String { #"{"c":\#(cursor),"t":"\#(table)","by":"\#(client)"}"# }
    }

    static func segment(from: Int64, _ rows: [Row]) -> LogSegments.Segment {
        var builder = LogSegments.Segment.Builder(from: from, capacity: rows.count)
        for row in rows {
            let taken = builder.append(cursor: row.cursor, table: row.table, client: row.client, text: ByteBuffer(string: row.text))
            #expect(taken)
        }
        return builder.build()
    }

    /// The full page the definition gives, or nil when fewer than `limit + 1` changes match.
    static func reference(_ rows: [Row], table: String?, excluding: String?, since: Int64, limit: Int) -> (String, Int64)? {
        let matching = rows.filter { $0.cursor > since && (table == nil || $0.table == table) && (excluding == nil || $0.client != excluding) }
        guard matching.count > limit else { return nil }
        let page = matching.prefix(limit)
        return ("[" + page.map(\.text).joined(separator: ",") + "]", page.last!.cursor)
    }

    @Test func pagesCutFromASegmentAreTheDefinedPages() {
        var random = SystemRandomNumberGenerator()
        let tables = ["items", "lists", "tags"]
        let clients = ["A", "B", "C", "D"]
        for _ in 0..<200 {
            let from = Int64.random(in: 0...1_000, using: &random)
            var cursor = from
            let rows = (0..<Int.random(in: 0...300, using: &random)).map { _ in
                cursor += Int64.random(in: 1...5, using: &random)
                return Row(cursor: cursor, table: tables.randomElement()!, client: clients.randomElement()!)
            }
            let segment = Self.segment(from: from, rows)
            for _ in 0..<20 {
                let since = Int64.random(in: (from - 20)...(cursor + 5), using: &random)
                let table = Bool.random() ? tables.randomElement()! : (Bool.random() ? nil : "absent")
                let excluding = Bool.random() ? clients.randomElement()! : (Bool.random() ? nil : "E")
                let limit = Int.random(in: 1...60, using: &random)
                let cut = segment.fullPage(table: table, excludingClient: excluding, since: since, limit: limit)
                // Before the segment's start it cannot know what lies between `since` and `from`.
                let expected = since < from ? nil : Self.reference(rows, table: table, excluding: excluding, since: since, limit: limit)
                #expect(cut?.text == expected?.0)
                if let cut, let expected {
                    #expect(cut.syncedUntil == expected.1 && cut.count == limit && cut.size == cut.text.utf8.count)
                }
            }
        }
    }

    @Test func aSegmentTakesRowsOnlyInCursorOrder() {
        var builder = LogSegments.Segment.Builder(from: 10, capacity: 4)
        let taken = [10, 11, 11, 9, 12].map { builder.append(cursor: $0, table: "t", client: "A", text: ByteBuffer(string: "{}")) }
        #expect(taken == [false, true, false, false, true])
        #expect(builder.build().count == 2)
    }

    @Test func aSegmentIsReadOnlyWhenAPageOverlapsThreeRecentOnes() {
        let cache = LogSegments(settings: .init(recent: nil))
        let key = LogSegments.Key(user: "u", app: "a")
        let start = ContinuousClock.now
        // Pages from random points of a long history: no overlap, no read.
        #expect(!cache.noteFullPage(key, since: 0, last: 100, now: start))
        #expect(!cache.noteFullPage(key, since: 500, last: 600, now: start))
        #expect(!cache.noteFullPage(key, since: 50, last: 150, now: start))  // overlaps one
        #expect(!cache.noteFullPage(key, since: 60, last: 160, now: start))  // overlaps two
        #expect(cache.noteFullPage(key, since: 70, last: 170, now: start))  // overlaps three: read
        // One read at a time per log.
        #expect(!cache.noteFullPage(key, since: 75, last: 175, now: start))
        cache.abandon(key)
        #expect(cache.noteFullPage(key, since: 80, last: 180, now: start))
        // Another log has demand of its own; old pages no longer count.
        let other = LogSegments.Key(user: "u", app: "b")
        for _ in 0..<3 { #expect(!cache.noteFullPage(other, since: 0, last: 100, now: start)) }
        #expect(!cache.noteFullPage(other, since: 0, last: 100, now: start + .seconds(3)))
        // No cache, no reads.
        let off = LogSegments(settings: .init(budget: 0))
        for _ in 0..<4 { #expect(!off.noteFullPage(key, since: 0, last: 100, now: start)) }
    }

    @Test func theNextStretchIsReadBeforeTheHeldOneRunsOut() throws {
        let cache = LogSegments(settings: .init(recent: nil))
        let key = LogSegments.Key(user: "u", app: "a")
        cache.store(key, Self.segment(from: 0, (1...100).map { Row(cursor: Int64($0), table: "t", client: "A") }))
        // Pages from the first half: nothing to read (asked from one point, a page never reads again).
        let early = try #require(cache.fullPage(key, table: nil, excludingClient: nil, since: 10, limit: 10))
        #expect(!cache.readsAhead(key, after: early))
        // From the second half: read once, from that page's since.
        let late = try #require(cache.fullPage(key, table: nil, excludingClient: nil, since: 60, limit: 10))
        #expect(late.first == 60)
        #expect(cache.readsAhead(key, after: late))
        #expect(!cache.readsAhead(key, after: late))  // being read
        cache.store(key, Self.segment(from: 60, (61...160).map { Row(cursor: Int64($0), table: "t", client: "A") }))
        // A later stretch is held: the first no longer reads ahead.
        let again = try #require(cache.fullPage(key, table: nil, excludingClient: nil, since: 60, limit: 10))
        #expect(!cache.readsAhead(key, after: late))
        #expect(again.syncedUntil == 70)
    }

    @Test func aPageAHeldStretchCoversIsNoDemand() {
        let cache = LogSegments(settings: .init(recent: nil))
        let key = LogSegments.Key(user: "u", app: "a")
        cache.store(key, Self.segment(from: 0, (1...100).map { Row(cursor: Int64($0), table: "t", client: "A") }))
        // Built by PostgreSQL while the stretch was being read: covered, not counted.
        for _ in 0..<4 { #expect(!cache.noteFullPage(key, since: 10, last: 50)) }
        // Pages beyond it are demand.
        #expect(!cache.noteFullPage(key, since: 90, last: 150))
        #expect(!cache.noteFullPage(key, since: 91, last: 151))
        #expect(!cache.noteFullPage(key, since: 92, last: 152))
        #expect(cache.noteFullPage(key, since: 93, last: 153))
    }

    @Test func heldSegmentsStayWithinTheBudgetAndTheirAge() {
        let rows = (1...100).map { Row(cursor: Int64($0), table: "t", client: "A") }
        let one = Self.segment(from: 0, rows)
        let cache = LogSegments(settings: .init(budget: one.bytes * 2 + one.bytes / 2, maximumAge: .seconds(30), recent: nil))
        let start = ContinuousClock.now
        let keys = (0..<3).map { LogSegments.Key(user: "u\($0)", app: "a") }
        cache.store(keys[0], one, now: start)
        cache.store(keys[1], one, now: start)
        #expect(cache.fullPage(keys[0], table: nil, excludingClient: nil, since: 0, limit: 10, now: start) != nil)  // keys[0] used last
        cache.store(keys[2], one, now: start)  // over the budget: keys[1], least recently used, goes
        #expect(cache.bytes <= cache.settings.budget)
        #expect(cache.fullPage(keys[1], table: nil, excludingClient: nil, since: 0, limit: 10, now: start) == nil)
        #expect(cache.fullPage(keys[0], table: nil, excludingClient: nil, since: 0, limit: 10, now: start)?.syncedUntil == 10)
        #expect(cache.fullPage(keys[2], table: nil, excludingClient: nil, since: 5, limit: 10, now: start)?.syncedUntil == 15)
        // Pages are never cut from another user's log, nor from another app's of the same user.
        #expect(cache.fullPage(LogSegments.Key(user: "someone else", app: "a"), table: nil, excludingClient: nil, since: 0, limit: 10, now: start) == nil)
        #expect(cache.fullPage(LogSegments.Key(user: "u0", app: "b"), table: nil, excludingClient: nil, since: 0, limit: 10, now: start) == nil)
        // Too old: dropped.
        #expect(cache.fullPage(keys[0], table: nil, excludingClient: nil, since: 0, limit: 10, now: start + .seconds(31)) == nil)
        #expect(cache.fullPage(keys[2], table: nil, excludingClient: nil, since: 0, limit: 10, now: start + .seconds(31)) == nil)
        #expect(cache.bytes == 0)
    }

    /// Pages are cut only after recent cursors, and compaction never folds changes that young:
    /// a page cut from a segment read before a fold could otherwise lack the updates folded
    /// away (their values moved into a row the stale segment holds as it was).
    @Test func pagesAreCutOnlyAfterCursorsCompactionNeverFolds() throws {
        let settings = LogSegments.Settings()
        let cache = LogSegments(settings: settings)
        let key = LogSegments.Key(user: "u", app: "a")
        let now: Int64 = 1_800_000_000_000_000
        let window = try #require(settings.recent).microseconds
        cache.store(key, Self.segment(from: now - 2 * window, (1...100).map {
            Row(cursor: now - 2 * window + Int64($0) * window / 50, table: "t", client: "A")
        }))
        // A since older than the window: from PostgreSQL, though the segment holds the page.
        #expect(cache.fullPage(key, table: nil, excludingClient: nil, since: now - 2 * window, limit: 10, wallClock: now) == nil)
        #expect(cache.fullPage(key, table: nil, excludingClient: nil, since: now - window - 1, limit: 10, wallClock: now) == nil)
        // Within it: cut from memory.
        let cut = try #require(cache.fullPage(key, table: nil, excludingClient: nil, since: now - window, limit: 10, wallClock: now))
        #expect(cut.syncedUntil == now - window + window / 5)
        // Nor is a page from before the window demand for a read: overlapping recent pages are.
        let reads = LogSegments(settings: settings)
        let old = (0..<6).map { _ in reads.noteFullPage(key, since: now - 2 * window, last: now - window, wallClock: now) }
        #expect(!old.contains(true))
        let recent = (0..<6).map { _ in reads.noteFullPage(key, since: now - window / 2, last: now, wallClock: now) }
        #expect(recent.contains(true))
        // The compaction floor lies below every since the cache serves, for as long as a segment is held.
        let horizon = Compactor.horizon(olderThan: .zero, now: now)
        #expect(horizon < now - window - settings.maximumAge.microseconds)
        #expect(Compactor.horizon(olderThan: .seconds(3600), now: now) == now - 3_600_000_000)
    }
}
