import HTTPKit
import Testing

@testable import ManaSync

/// The fold of old history (``HistoryFold``) against the client's apply rule
/// (``ClientModel``): for random histories, a client at any cursor that pulls the compacted
/// log ends exactly where the full log takes it. No database: the SQL that carries out a plan
/// is CompactionTests'.
@Suite struct HistoryFoldTests {
    /// One stored change: its cursor, the client that pushed it, and its wire shape.
    struct Entry: Equatable {
        var cursor: Int64
        var client: String
        var change: JSONValue

        var key: ClientModel.Key { ClientModel.Key(table: change["table"]!.stringValue!, id: change["id"]!.stringValue!) }
        var op: Change.Operation { Change.Operation(rawValue: change["op"]!.stringValue!)! }
    }

    /// The row the compactor reads for an entry: field names and timestamp text as
    /// `coalesce(value->>'at', value->>'updatedAt', '')` gives them.
    static func row(_ entry: Entry) -> HistoryFold.Row {
        guard entry.op == .update else { return HistoryFold.Row(cursor: entry.cursor, op: entry.op) }
        guard let fields = entry.change["fields"]?.objectValue else { return HistoryFold.Row(cursor: entry.cursor, op: .update, fields: nil) }
        return HistoryFold.Row(
            cursor: entry.cursor, op: .update,
            fields: fields.map { name, entry in
                func text(_ value: JSONValue?) -> String? {
                    switch value {
                    case nil, .null?: return nil
                    case .string(let text)?: return text
                    default: return "not-a-string"
                    }
                }
                return HistoryFold.Field(name: name, stamp: text(entry["at"]) ?? text(entry["updatedAt"]) ?? "")
            })
    }

    /// The log after compaction up to `horizon`, carried out in memory the way
    /// `sync.compact_apply` does it in PostgreSQL.
    static func compact(_ log: [Entry], horizon: Int64) -> [Entry] {
        var byRecord: [ClientModel.Key: [Entry]] = [:]
        for entry in log where entry.cursor <= horizon { byRecord[entry.key, default: []].append(entry) }
        var removed: Set<Int64> = []
        var rewritten: [Int64: (fields: JSONValue, client: String)] = [:]
        for entries in byRecord.values {
            guard let plan = HistoryFold.plan(entries.map(row)) else { continue }
            removed.formUnion(plan.remove)
            if let rewrite = plan.rewrite {
                let byCursor = Dictionary(uniqueKeysWithValues: entries.map { ($0.cursor, $0) })
                var fields: [String: JSONValue] = [:]
                for source in rewrite.sources { fields[source.name] = byCursor[source.cursor]!.change["fields"]![source.name]! }
                rewritten[rewrite.target] = (.object(fields), "")
            }
        }
        return log.compactMap { entry in
            guard !removed.contains(entry.cursor) else { return nil }
            guard let rewrite = rewritten[entry.cursor] else { return entry }
            var change = entry.change.objectValue!
            change["fields"] = rewrite.fields
            return Entry(cursor: entry.cursor, client: rewrite.client, change: .object(change))
        }
    }

    // MARK: Generated histories

    static let fieldNames = ["title", "done", "n", "note"]

    /// An instant as one of several spellings clients send: `Z` with 0, 3 or 6 digits, or an
    /// offset. Few distinct instants, so equal and out-of-order timestamps are common.
    static func stamp(_ random: inout SplitMix64) -> String {
        let minute = Int.random(in: 0...5, using: &random)
        switch Int.random(in: 0..<4, using: &random) {
        case 0: return "2024-01-01T10:0\(minute):00Z"
        case 1: return "2024-01-01T10:0\(minute):00.000Z"
        case 2: return "2024-01-01T10:0\(minute):00.000000Z"
        default: return "2024-01-01T11:0\(minute):00+01:00"
        }
    }

    static func value(_ random: inout SplitMix64) -> JSONValue {
        switch Int.random(in: 0..<4, using: &random) {
        case 0: return .null
        case 1: return .bool(Bool.random(using: &random))
        case 2: return .number(Double(Int.random(in: 0...3, using: &random)))
        default: return .string(["a", "b", "c"].randomElement(using: &random)!)
        }
    }

    static func history(_ random: inout SplitMix64) -> [Entry] {
        let keys = (0..<Int.random(in: 1...4, using: &random)).map { ("t\($0 % 2)", "r\($0)") }
        let clients = ["c1", "c2", "c3"]
        var cursor: Int64 = 0
        return (0..<Int.random(in: 1...40, using: &random)).map { _ in
            cursor += Int64.random(in: 1...3, using: &random)
            let (table, id) = keys.randomElement(using: &random)!
            var change: [String: JSONValue] = ["table": .string(table), "id": .string(id)]
            switch Int.random(in: 0..<20, using: &random) {
            case 0..<4:
                change["op"] = "insert"
                var data: [String: JSONValue] = ["id": .string(id)]
                for name in fieldNames where Bool.random(using: &random) { data[name] = value(&random) }
                change["data"] = .object(data)
                if Bool.random(using: &random) { change["spaceId"] = "s1" }
            case 4..<6:
                change["op"] = "delete"
                change["deletedAt"] = .string(stamp(&random))
            case 6..<8:
                change["op"] = "delete"
            default:
                change["op"] = "update"
                var fields: [String: JSONValue] = [:]
                for _ in 0..<Int.random(in: 1...3, using: &random) {
                    let key = Bool.random(using: &random) ? "at" : "updatedAt"
                    var entry: [String: JSONValue] = ["value": value(&random)]
                    entry[key] = .string(stamp(&random))
                    fields[fieldNames.randomElement(using: &random)!] = .object(entry)
                }
                change["fields"] = .object(fields)
            }
            return Entry(cursor: cursor, client: clients.randomElement(using: &random)!, change: .object(change))
        }
    }

    /// Clients at each of `cursors` hold what the full history up to their cursor gave, and
    /// receive every later change except their own (they pushed those; `X-Client-Id` keeps them
    /// out). From the compacted log they must end where the full log takes them. Clients whose
    /// cursor is behind a change of their own are left out: they hold that change already, out
    /// of cursor order, and even the full history leaves them where no other device is
    /// (docs/sync.md).
    static func checkEquivalence(full: [Entry], compacted: [Entry], cursors: [Int64], seed: UInt64) {
        for cursor in Set(cursors) {
            var base = ClientModel()
            base.apply(full.lazy.filter { $0.cursor <= cursor }.map(\.change))
            for client in [nil, "c1", "c2", "c3"] {
                if let client, full.contains(where: { $0.cursor > cursor && $0.client == client }) { continue }
                var expected = base
                expected.apply(full.lazy.filter { $0.cursor > cursor && $0.client != client }.map(\.change))
                var actual = base
                actual.apply(compacted.lazy.filter { $0.cursor > cursor && $0.client != client }.map(\.change))
                #expect(actual == expected, "seed \(seed), cursor \(cursor), client \(client ?? "-")")
                if actual != expected { return }
            }
        }
    }

    @Test func aClientAtAnyCursorEndsInTheSameStateFromTheCompactedLog() {
        var folded = 0
        for seed in UInt64(1)...3_000 {
            var random = SplitMix64(seed: seed)
            let full = Self.history(&random)
            let last = full.last!.cursor
            let horizon = Int64.random(in: 0...last + 1, using: &random)
            let compacted = Self.compact(full, horizon: horizon)
            folded += full.count - compacted.count
            // No cursor is made up, and at most two rows per record remain at or before the horizon.
            #expect(Set(compacted.map(\.cursor)).isSubset(of: Set(full.map(\.cursor))))
            let kept = Dictionary(grouping: compacted.filter { $0.cursor <= horizon }, by: \.key)
            #expect(kept.values.allSatisfy { $0.count <= 2 }, "seed \(seed)")
            #expect(compacted.filter { $0.cursor > horizon } == full.filter { $0.cursor > horizon })
            let cursors = [0, horizon, last] + (0..<4).map { _ in Int64.random(in: 0...last, using: &random) }
            Self.checkEquivalence(full: full, compacted: compacted, cursors: cursors, seed: seed)
            // A second run at the same horizon finds nothing to do; a later one stays exact.
            #expect(Self.compact(compacted, horizon: horizon) == compacted, "seed \(seed)")
            let later = Self.compact(compacted, horizon: Int64.random(in: horizon...last + 1, using: &random))
            Self.checkEquivalence(full: full, compacted: later, cursors: cursors, seed: seed)
        }
        // The generator makes histories worth folding (a check on the test itself).
        #expect(folded > 12_000)
    }

    // MARK: The rule on examples

    static func update(_ cursor: Int64, _ fields: [(String, String)]) -> HistoryFold.Row {
        HistoryFold.Row(cursor: cursor, op: .update, fields: fields.map { HistoryFold.Field(name: $0.0, stamp: $0.1) })
    }

    @Test func anInsertAndItsUpdatesFoldIntoTheInsertAndTheLastUpdate() throws {
        let rows =
            [HistoryFold.Row(cursor: 1, op: .insert)]
            + (2...101).map { Self.update(Int64($0), [("title", "2024-01-01T10:00:00.\(String(format: "%03d", $0))Z")]) }
            + [Self.update(102, [("done", "2024-01-01T09:00:00Z")])]
        let plan = try #require(HistoryFold.plan(rows))
        #expect(plan.remove == Array(2...101))
        #expect(plan.rewrite?.target == 102)
        #expect(plan.rewrite?.sources.map(\.name) == ["done", "title"])
        #expect(plan.rewrite?.sources.map(\.cursor) == [102, 101])
    }

    @Test func theLaterChangeWinsATieAndAnOlderTimestampLosesWhateverItsCursor() throws {
        let plan = try #require(
            HistoryFold.plan([
                Self.update(1, [("a", "2024-01-01T10:05:00Z"), ("b", "2024-01-01T10:00:00Z")]),
                Self.update(2, [("a", "2024-01-01T11:05:00+01:00")]),  // the same instant: wins, received later
                Self.update(3, [("b", "2023-12-31T10:00:00Z")]),  // older: loses to cursor 1
            ]))
        #expect(plan.remove == [1, 2])
        #expect(plan.rewrite?.sources.map(\.cursor) == [2, 1])
    }

    @Test func aRecordWhoseLastChangeIsADeleteKeepsOnlyTheTombstone() throws {
        let plan = try #require(
            HistoryFold.plan([
                HistoryFold.Row(cursor: 1, op: .insert), Self.update(2, [("a", "2024-01-01T10:00:00Z")]),
                HistoryFold.Row(cursor: 3, op: .delete),
            ]))
        #expect(plan == HistoryFold.Plan(rewrite: nil, remove: [1, 2]))
    }

    @Test func aFoldedRecordIsLeftAsItIs() throws {
        let plan = try #require(
            HistoryFold.plan([HistoryFold.Row(cursor: 1, op: .insert), Self.update(5, [("a", "2024-01-01T10:00:00Z")])]))
        #expect(plan.isEmpty)
    }

    @Test func aRecordWithATimestampNoClientCanCompareIsNotFolded() {
        #expect(HistoryFold.plan([Self.update(1, [("a", "yesterday")]), Self.update(2, [("a", "2024-01-01T10:00:00Z")])]) == nil)
        #expect(HistoryFold.plan([HistoryFold.Row(cursor: 1, op: .update, fields: nil), Self.update(2, [])]) == nil)
        // Before the reset it does not matter: the insert overwrites it.
        #expect(HistoryFold.plan([Self.update(1, [("a", "")]), HistoryFold.Row(cursor: 2, op: .insert)])?.remove == [1])
    }
}
