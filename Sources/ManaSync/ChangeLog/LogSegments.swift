import HTTPKit
import NIOCore
import Synchronization

/// Recent stretches of users' own change logs, held in memory so that a **full** page inside
/// one is assembled without PostgreSQL (docs/sync.md, "Page cache").
///
/// Why it is exact: a user's own log (a user in no shared space) only grows at its end. A push
/// numbers its changes above the head it locks, and holds that lock until it commits, so every
/// change committed later has a cursor above every cursor visible now. A segment read in one
/// snapshot, `from < cursor ≤ to`, is therefore complete for good: no change can appear inside
/// it later. A full page (`limit` matching changes and at least one more after them) depends only
/// on the changes up to the first one left out, so when all of those lie in a segment, the page
/// is the one PostgreSQL would build: the same changes, `syncedUntil` the last one's cursor,
/// `hasMore` true. A page that is not full ends at the head, which moves: it always comes from
/// PostgreSQL. Compaction (docs/sync.md) rewrites old rows in place and removes the updates it
/// folded: a reader that pages through a folded range from PostgreSQL and then cuts the next
/// page from a segment read before the fold would miss the removed updates (their values are in
/// the rewritten row, which the stale segment holds as it was). So pages are cut only after a
/// `since` within ``Settings/recent`` of now, and compaction never folds changes younger than
/// ``Compactor/minimumAge``, longer than that plus ``Settings/maximumAge``: no row of a page cut
/// from memory can have been folded since its segment was read.
///
/// When a segment is read: only where pages overlap. Each full page PostgreSQL builds is noted
/// (its `since` and last cursor); when a page overlaps three others noted in the last two seconds
/// for the same user and app, the stretch from its `since` is read once (``Settings/rows``
/// changes, every table and client) and later pages starting inside it are cut from memory. Many
/// devices of one user catching up from about the same point share one read; pulls from random
/// points of a long history never trigger one.
final class LogSegments: Sendable {
    struct Settings: Sendable {
        /// Most bytes of change text held (0: no cache).
        var budget = 8 << 20
        /// Changes one segment holds: a few pages, so that a page filtered by table or client still fits.
        var rows = 4_000
        /// A segment is dropped this long after it was read.
        var maximumAge: Duration = .seconds(30)
        /// Full pages overlapping one another within this long count as shared demand.
        var demandWindow: Duration = .seconds(2)
        /// Pages are cut only after a `since` at most this old (cursors are microseconds of
        /// the wall clock); see ``Compactor/minimumAge``. nil: any (unit tests of cursors
        /// that are not times). Half an hour: clients that were away for minutes catch up
        /// from a `since` several minutes old (the original's load test pushes from one minute
        /// ago and pulls from five and ten; a one-minute window cut no page of it, session 41).
        var recent: Duration? = .seconds(30 * 60)
    }

    struct Key: Hashable, Sendable {
        let user: String
        let app: String
    }

    /// A complete stretch of one log: every change with `from < cursor ≤ to`, in cursor order.
    struct Segment: Sendable {
        let from: Int64
        let cursors: [Int64]
        /// End of change i's text and its comma in `text` (it starts where change i-1's ends).
        let ends: [Int32]
        let tables: [UInt16]
        let tableNames: [String]
        let clients: [UInt32]
        let clientIndex: [String: UInt32]
        let text: ByteBuffer

        var to: Int64 { cursors.last ?? from }
        var count: Int { cursors.count }
        /// What the segment holds in memory, roughly.
        var bytes: Int { text.readableBytes + cursors.count * 18 + clientIndex.count * 48 }

        /// The page of `limit` changes after `since` (of `table`, not of `excludedClient`) when
        /// the segment holds it and one more matching change; nil when it does not.
        func fullPage(table: String?, excludingClient excluded: String?, since: Int64, limit: Int) -> Cut? {
            guard limit > 0, from <= since, since < to else { return nil }
            var tableNumber: UInt16?
            if let table {
                guard let index = tableNames.firstIndex(of: table) else { return nil }
                tableNumber = UInt16(index)
            }
            let excludedNumber = excluded.flatMap { clientIndex[$0] }
            let first = firstIndex(after: since)
            var index = first
            var picked: [Int32] = []
            picked.reserveCapacity(limit)
            var size = 1  // `[`, each change with its comma, the last comma the `]`
            while index < cursors.count {
                defer { index += 1 }
                if let tableNumber, tables[index] != tableNumber { continue }
                if let excludedNumber, clients[index] == excludedNumber { continue }
                guard picked.count < limit else { return Cut(segment: self, first: first, picked: picked, size: size) }
                picked.append(Int32(index))
                size += Int(ends[index] - start(index))
            }
            return nil
        }

        fileprivate func start(_ index: Int) -> Int32 { index == 0 ? 0 : ends[index - 1] }

        /// The first index whose cursor is above `since`.
        private func firstIndex(after since: Int64) -> Int {
            var low = 0
            var high = cursors.count
            while low < high {
                let middle = (low + high) / 2
                if cursors[middle] <= since { low = middle + 1 } else { high = middle }
            }
            return low
        }

        /// Builds a segment from rows in cursor order.
        struct Builder {
            let from: Int64
            private var cursors: [Int64] = []
            private var ends: [Int32] = []
            private var tables: [UInt16] = []
            private var tableNames: [String] = []
            private var clients: [UInt32] = []
            private var clientIndex: [String: UInt32] = [:]
            private var text = ByteBuffer()

            init(from: Int64, capacity: Int) {
                self.from = from
                cursors.reserveCapacity(capacity)
                ends.reserveCapacity(capacity)
                tables.reserveCapacity(capacity)
                clients.reserveCapacity(capacity)
                text.reserveCapacity(capacity * 180)
            }

            /// Adds the next change; false (and nothing added) when it is out of order or the text is too large.
            @discardableResult
            mutating func append(cursor: Int64, table: String, client: String, text change: ByteBuffer) -> Bool {
                guard cursor > (cursors.last ?? from), text.writerIndex + change.readableBytes + 1 < Int32.max else { return false }
                var tableNumber = tableNames.firstIndex(of: table)
                if tableNumber == nil {
                    guard tableNames.count < Int(UInt16.max) else { return false }
                    tableNames.append(table)
                    tableNumber = tableNames.count - 1
                }
                let clientNumber: UInt32
                if let known = clientIndex[client] {
                    clientNumber = known
                } else {
                    clientNumber = UInt32(clientIndex.count)
                    clientIndex[client] = clientNumber
                }
                cursors.append(cursor)
                tables.append(UInt16(tableNumber!))
                clients.append(clientNumber)
                text.writeImmutableBuffer(change)
                text.writeInteger(UInt8(ascii: ","))
                ends.append(Int32(text.writerIndex))
                return true
            }

            func build() -> Segment {
                Segment(
                    from: from, cursors: cursors, ends: ends, tables: tables, tableNames: tableNames, clients: clients,
                    clientIndex: clientIndex, text: text)
            }
        }
    }

    /// A full page found in a segment, not yet copied: the answer writes it straight into its
    /// envelope (``write(into:)``), so a page cut from memory is copied once.
    struct Cut: Sendable {
        let segment: Segment
        /// Index of the segment's first change after the page's `since`.
        let first: Int
        /// Indexes of the page's changes in `segment`.
        let picked: [Int32]
        /// Bytes of the changes array, `[` to `]`.
        let size: Int

        var count: Int { picked.count }
        var syncedUntil: Int64 { segment.cursors[Int(picked.last!)] }

        /// Writes the changes array, `[{…},{…}]`: each run of neighbouring changes in one copy
        /// (every change is held with its comma; the last comma becomes the `]`).
        func write(into out: inout ByteBuffer) {
            out.writeInteger(UInt8(ascii: "["))
            segment.text.withUnsafeReadableBytes { text in
                var run = 0..<0
                for index in picked {
                    let change = Int(segment.start(Int(index)))..<Int(segment.ends[Int(index)])
                    if change.lowerBound == run.upperBound {
                        run = run.lowerBound..<change.upperBound
                    } else {
                        out.writeBytes(UnsafeRawBufferPointer(rebasing: text[run]))
                        run = change
                    }
                }
                out.writeBytes(UnsafeRawBufferPointer(rebasing: text[run]))
            }
            out.setInteger(UInt8(ascii: "]"), at: out.writerIndex - 1)
        }
    }

    let settings: Settings
    private let state: Mutex<State>

    /// Earlier full pages (of the last eight, within ``Settings/demandWindow``) a page must
    /// overlap for its stretch to be read. Three: 32 clients pulling pages of 1,000 from random
    /// points of 200,000 changes read a stretch about once a minute (two: several a second).
    static let overlapsForARead = 3

    private struct Held {
        let segment: Segment
        let readAt: ContinuousClock.Instant
        var used: UInt64
    }

    private struct Demand {
        var pages: [(since: Int64, last: Int64, at: ContinuousClock.Instant)] = []
        var loading = false
    }

    private struct State {
        var held: [Key: [Held]] = [:]
        var bytes = 0
        var tick: UInt64 = 0
        var demand: [Key: Demand] = [:]
    }

    init(settings: Settings) {
        self.settings = settings
        state = Mutex(State())
    }

    var enabled: Bool { settings.budget > 0 }

    /// Bytes of the segments held.
    var bytes: Int { state.withLock { $0.bytes } }

    /// Whether pages after `since` may be cut from memory (``Settings/recent``).
    private func isRecent(_ since: Int64, wallClock: Int64) -> Bool {
        settings.recent.map { since >= wallClock - $0.microseconds } ?? true
    }

    /// A full page found in a held segment, or nil (PostgreSQL builds it).
    func fullPage(
        _ key: Key, table: String?, excludingClient: String?, since: Int64, limit: Int, now: ContinuousClock.Instant = .now,
        wallClock: Int64 = Timestamp.nowMicroseconds()
    ) -> Cut? {
        guard enabled, isRecent(since, wallClock: wallClock) else { return nil }
        let candidates: [Segment] = state.withLock { state in
            guard var list = state.held[key] else { return [] }
            list.removeAll { held in
                let old = now - held.readAt > settings.maximumAge
                if old { state.bytes -= held.segment.bytes }
                return old
            }
            var found: [Segment] = []
            state.tick += 1
            for index in list.indices where list[index].segment.from <= since && since < list[index].segment.to {
                list[index].used = state.tick
                found.append(list[index].segment)
            }
            state.held[key] = list.isEmpty ? nil : list
            return found
        }
        for segment in candidates {
            if let page = segment.fullPage(table: table, excludingClient: excludingClient, since: since, limit: limit) { return page }
        }
        return nil
    }

    /// After a page cut from memory: true (the caller reads the stretch from the page's
    /// `since`, then calls ``store(_:_:now:)`` or ``abandon(_:)``) when more than half of the
    /// segment lies behind that `since` and no later stretch of this log is held or being read.
    /// Clients that follow the log's end (each asking from about a minute ago, say) then find
    /// the next stretch held before this one runs out; pages asked from one point never read again.
    func readsAhead(_ key: Key, after cut: Cut) -> Bool {
        guard cut.first * 2 >= cut.segment.count else { return false }
        return state.withLock { state in
            guard state.demand[key]?.loading != true,
                state.held[key]?.contains(where: { $0.segment.from > cut.segment.from }) != true
            else { return false }
            state.demand[key, default: Demand()].loading = true
            return true
        }
    }

    /// Notes a full page PostgreSQL built (`since` to its last cursor); true when the caller
    /// should read the segment from `since` (and then call ``store(_:_:now:)`` or ``abandon(_:)``).
    /// A page a held segment now covers (looked up before that segment arrived) is not demand.
    /// A page from before ``Settings/recent`` is never cut, so it is no demand for a read either.
    func noteFullPage(
        _ key: Key, since: Int64, last: Int64, now: ContinuousClock.Instant = .now, wallClock: Int64 = Timestamp.nowMicroseconds()
    ) -> Bool {
        guard enabled, isRecent(since, wallClock: wallClock) else { return false }
        return state.withLock { state in
            if state.held[key]?.contains(where: { $0.segment.from <= since && last < $0.segment.to }) == true { return false }
            if state.demand.count > 4_096 && state.demand[key] == nil {
                state.demand = state.demand.filter { $0.value.loading }
            }
            var demand = state.demand[key] ?? Demand()
            demand.pages.removeAll { now - $0.at > settings.demandWindow }
            let overlapping = demand.pages.count { $0.since <= last && since <= $0.last }
            demand.pages.append((since, last, now))
            if demand.pages.count > 8 { demand.pages.removeFirst(demand.pages.count - 8) }
            let load = overlapping >= Self.overlapsForARead && !demand.loading
            if load { demand.loading = true }
            state.demand[key] = demand
            return load
        }
    }

    /// Holds a segment read after ``noteFullPage(_:since:last:now:)`` said so, evicting the
    /// least recently used ones beyond the budget.
    func store(_ key: Key, _ segment: Segment, now: ContinuousClock.Instant = .now) {
        state.withLock { state in
            state.demand[key]?.loading = false
            state.demand[key]?.pages.removeAll()
            guard segment.count > 0, segment.bytes <= settings.budget else { return }
            state.tick += 1
            var list = state.held[key] ?? []
            // A segment inside the new one adds nothing.
            list.removeAll { held in
                let covered = held.segment.from >= segment.from && held.segment.to <= segment.to
                if covered { state.bytes -= held.segment.bytes }
                return covered
            }
            list.append(Held(segment: segment, readAt: now, used: state.tick))
            state.held[key] = list
            state.bytes += segment.bytes
            while state.bytes > settings.budget {
                guard let (oldestKey, index) = Self.leastRecentlyUsed(state.held) else { break }
                state.bytes -= state.held[oldestKey]![index].segment.bytes
                state.held[oldestKey]!.remove(at: index)
                if state.held[oldestKey]!.isEmpty { state.held[oldestKey] = nil }
            }
        }
    }

    /// A read that failed: the next overlapping pages may try again.
    func abandon(_ key: Key) {
        state.withLock { $0.demand[key]?.loading = false }
    }

    private static func leastRecentlyUsed(_ held: [Key: [Held]]) -> (Key, Int)? {
        var best: (Key, Int, UInt64)?
        for (key, list) in held {
            for (index, entry) in list.enumerated() where best == nil || entry.used < best!.2 {
                best = (key, index, entry.used)
            }
        }
        return best.map { ($0.0, $0.1) }
    }
}
