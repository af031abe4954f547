import Foundation
import HTTPKit
import Testing

@testable import ManaSync

/// A push body read straight into columns (``PushScan``) against the same body read as JSON
/// values and validated change by change (``SyncController/readChanges(_:maximumChanges:clientIDHeader:)``,
/// then ``PushRows/init(_:)``): the scan reads a body only when the tree would store the same
/// rows, and leaves every body the tree refuses to it (no database).
@Suite struct PushScanTests {
    static let maximumChanges = 50

    /// What the tree path stores for `text`, or nil when it refuses it.
    static func tree(_ text: String) -> (clientID: String, since: String?, rows: PushRows, tables: [String])? {
        guard let value = try? JSONParser.parse(text),
            let (clientID, body, changes) = try? SyncController.readChanges(value, maximumChanges: maximumChanges, clientIDHeader: nil),
            (try? SyncRequest.cursor(body.since)) != nil
        else { return nil }
        return (clientID, body.since?.stringValue, PushRows(changes.map(\.change)), Array(Set(changes.map(\.change.table))).sorted())
    }

    /// What the scan reads of `text` when the controller's checks of its client id and `since` pass.
    static func scan(_ text: String) -> PushScan? {
        var text = text
        guard let scanned = text.withUTF8({ PushScan($0, maximumChanges: maximumChanges) }),
            (try? SyncRequest.clientID(header: nil, body: scanned.clientID.map(JSONValue.string))) != nil,
            (try? SyncRequest.cursor(scanned.since.map(JSONValue.string))) != nil
        else { return nil }
        return scanned
    }

    static func json(_ text: String) -> JSONValue? { try? JSONParser.parse(text) }

    /// Each change as served: the text PostgreSQL joins from the columns (migration 0017).
    static func served(_ rows: PushRows) -> [JSONValue?] {
        let (heads, data, fields, tails) = (
            PushRowsTests.elements(rows[.heads]), PushRowsTests.elements(rows[.data]), PushRowsTests.elements(rows[.fields]),
            PushRowsTests.elements(rows[.tails])
        )
        return (0..<rows.count).map { row in
            json(heads[row] + (data[row].isEmpty ? "" : #","data":"# + data[row])
                + (fields[row].isEmpty ? "" : #","fields":"# + fields[row]) + tails[row] + #"e-1"}"#)
        }
    }

    /// The scan's rows are the tree's: the same texts, and the same JSON where a column holds JSON.
    static func expectSame(_ scanned: PushScan, _ text: String, sourceLocation: SourceLocation = #_sourceLocation) {
        guard let tree = tree(text) else {
            Issue.record("the tree refuses what the scan read: \(text)", sourceLocation: sourceLocation)
            return
        }
        #expect(scanned.clientID == tree.clientID, sourceLocation: sourceLocation)
        #expect(scanned.since == tree.since, sourceLocation: sourceLocation)
        #expect(scanned.tables == tree.tables, sourceLocation: sourceLocation)
        #expect(scanned.rows.count == tree.rows.count, "\(text)", sourceLocation: sourceLocation)
        for column in [PushRows.Column.tables, .records, .ops, .deleted, .spaces] {
            #expect(PushRowsTests.elements(scanned.rows[column]) == PushRowsTests.elements(tree.rows[column]), "\(column) of \(text)",
                    sourceLocation: sourceLocation)
        }
        for column in [PushRows.Column.data, .fields, .extras] {
            let (mine, theirs) = (PushRowsTests.elements(scanned.rows[column]), PushRowsTests.elements(tree.rows[column]))
            #expect(mine.map { $0.isEmpty ? nil : json($0) } == theirs.map { $0.isEmpty ? nil : json($0) }, "\(column) of \(text)",
                    sourceLocation: sourceLocation)
            #expect(mine.allSatisfy { $0.isEmpty || json($0) != nil }, sourceLocation: sourceLocation)
        }
        #expect(served(scanned.rows) == served(tree.rows), "served text of \(text)", sourceLocation: sourceLocation)
        #expect(served(scanned.rows).allSatisfy { $0 != nil }, sourceLocation: sourceLocation)
    }

    static let plainPushes = [
        // The benchmark's push.
        #"{"clientId":"vu-1","since":"2026-12-04T07:00:00.000Z","changes":[{"table":"items","id":"1-2-0","op":"insert","data":{"n":0,"text":"benchmark row"}},{"table":"items","id":"1-2-1","op":"insert","data":{"n":1,"text":"benchmark row"}}]}"#,
        // Every kind of change, spaces anywhere between tokens, members in any order.
        """
        { "changes" : [
            { "op" : "insert", "data" : { "title" : "a \\"quoted\\" \\/ line\\nbreak é ✓", "tags" : [ 1, 2.5, -0, 1e3, 12345678901234567, true, null, { } , [ ] ],
              "nested" : { "deep" : [ { "x" : -1.25E-2 } ] } }, "table" : "notes", "id" : "n-1", "actor" : { "device" : "d" }, "schemaVersion" : 1 },
            { "table" : "notes", "id" : "n-1", "op" : "update", "fields" : { "title" : { "value" : "b", "updatedAt" : "2026-01-01T00:00:00.123456Z" },
              "done" : { "at" : "2026-01-01T00:00:00+02:00" }, "_meta" : { "value" : 1, "updatedAt" : "2026-01-01T00:00:00Z" } }, "eventId" : "client's" },
            { "table" : "tasks", "id" : "t-1", "op" : "delete", "deletedAt" : "2026-01-02T03:04:05Z", "origin" : "sync" },
            { "table" : "tasks", "id" : "t-2", "op" : "delete" },
            { "table" : "tasks", "id" : "t-3", "op" : "delete", "deletedAt" : null, "data" : { "ignored" : true }, "fields" : 7 },
            { "table" : "tasks", "id" : "t-4", "op" : "insert", "data" : { }, "fields" : { "x" : 1 }, "deletedAt" : 5 }
          ], "clientId" : "c", "since" : null, "schemaVersion" : 1, "other" : { "kept" : [ "out" ] } }
        """,
        // Updates that change nothing are left out; an entry without a value stores null.
        #"{"clientId":"c","changes":[{"table":"a","id":"1","op":"update"},{"table":"a","id":"2","op":"update","fields":null},{"table":"a","id":"3","op":"update","fields":{}},{"table":"a","id":"4","op":"update","fields":{"_updatedAt":{"value":1,"at":"2026-01-01T00:00:00Z"}}},{"table":"b","id":"5","op":"update","fields":{"x":{"updatedAt":"2026-01-01T00:00:00Z","at":"not a stamp"}}},{"table":"c","id":"6","op":"update","fields":{"y":{"at":"2026-01-01T00:00:00Z","extra":[1]}}}]}"#,
        // No changes; a client id of 200 characters; a name of 256.
        #"{"clientId":"\#(String(repeating: "c", count: 200))","changes":[]}"#,
        #"{"clientId":"c","changes":[{"table":"\#(String(repeating: "é", count: 256))","id":"x","op":"insert","data":{"a":"\#(String(repeating: "z", count: 3000))"}}]}"#,
    ]

    @Test func plainPushesAreReadAsTheTreeReadsThem() throws {
        for text in Self.plainPushes {
            let scanned = try #require(Self.scan(text), "\(text)")
            Self.expectSame(scanned, text)
        }
        let scanned = try #require(Self.scan(Self.plainPushes[1]))
        #expect(scanned.rows.count == 6 && scanned.tables == ["notes", "tasks"])
        #expect(Self.scan(Self.plainPushes[2])?.rows.count == 2)
        #expect(Self.scan(Self.plainPushes[3])?.rows.count == 0)
        // As spelt: the client's key order and number text.
        let data = PushRowsTests.elements(scanned.rows[.data])
        #expect(data[0].hasPrefix(#"{"title":"a \"quoted\" \/ line\nbreak é ✓","tags":[1,2.5,-0,1e3,12345678901234567,true,null,{},[]]"#))
        #expect(PushRowsTests.elements(scanned.rows[.fields])[1] == #"{"title":{"value":"b","updatedAt":"2026-01-01T00:00:00.123456Z"},"done":{"at":"2026-01-01T00:00:00+02:00","value":null},"_meta":{"value":1,"updatedAt":"2026-01-01T00:00:00Z"}}"#)
        #expect(PushRowsTests.elements(scanned.rows[.extras]) == [#"{"actor":{"device":"d"},"schemaVersion":1}"#, "", #"{"origin":"sync"}"#, "", "", ""])
    }

    /// Bodies the tree stores but reads with a meaning of its own: left to it.
    @Test func whatTheTreeReadsItsOwnWayIsLeftToIt() throws {
        let change = #"{"table":"t","id":"1","op":"insert","data":{"a":1}}"#
        let wide = (0..<65).map { #""k\#($0)":\#($0)"# }.joined(separator: ",")
        let bodies = [
            #"{"clientId":"c","changes":[{"table":"t","id":"1","op":"insert","data":{"a":1,"a":2}}]}"#,  // repeated member
            #"{"clientId":"c","clientId":"d","changes":[\#(change)]}"#,
            #"{"clientId":"c","changes":[\#(change),]}"#,  // trailing comma
            #"{"clientId":"c","changes":[\#(change)],}"#,
            #"{"clientId":"c","changes":[{"table":"t","id":"1","op":"insert","data":{"a":"\u00e9"}}]}"#,  // \u escape
            #"{"clientId":"c","changes":[{"table":"t\"","id":"1","op":"insert","data":{}}]}"#,  // escape in a name
            #"{"clientId":"c","changes":[{"table":"t","id":"1","op":"insert","data":{"a\n":1}}]}"#,
            #"{"clientId":"c","changes":[{"table":"t","id":"1","op":"insert","data":{},"spaceId":"_personal:u"}]}"#,  // spaces
            #"{"clientId":"c","changes":[{"table":"t","id":"1","op":"insert","data":{"spaceId":""}}]}"#,
            #"{"clientId":"c","changes":[{"table":"t","id":"1","op":"update","fields":{"spaceId":{"value":"s","at":"2026-01-01T00:00:00Z"}}}]}"#,
            "\u{FEFF}" + #"{"clientId":"c","changes":[\#(change)]}"#,  // byte order mark
            #"{"clientId":"c","changes":[{"table":"t","id":"1","op":"insert","data":{\#(wide)}}]}"#,  // 65 members
            #"{"clientId":"c\\d","changes":[\#(change)]}"#,
        ]
        for text in bodies {
            #expect(Self.tree(text) != nil, "the tree reads \(text)")
            #expect(Self.scan(text) == nil, "\(text)")
        }
    }

    /// Every body the tree refuses, the scan leaves to it (so the 400 names the field), and what
    /// the scan reads of broken-up pushes is what the tree stores.
    @Test func bodiesTheTreeRefusesAreLeftToItAndWhatTheScanReadsTheTreeStores() throws {
        let refused = [
            "", "[]", "null", #"{"clientId":"c"}"#, #"{"clientId":"c","changes":null}"#, #"{"clientId":"c","changes":{}}"#,
            #"{"changes":[]}"#, #"{"clientId":5,"changes":[]}"#, #"{"clientId":"","changes":[]}"#,
            #"{"clientId":"\#(String(repeating: "c", count: 201))","changes":[]}"#,
            #"{"clientId":"c","since":"yesterday","changes":[]}"#, #"{"clientId":"c","since":5,"changes":[]}"#,
            #"{"clientId":"c","schemaVersion":2,"changes":[]}"#, #"{"clientId":"c","schemaVersion":1.5,"changes":[]}"#,
            #"{"clientId":"c","changes":[\#(Array(repeating: #"{"table":"t","id":"1","op":"delete"}"#, count: 51).joined(separator: ","))]}"#,
            #"{"clientId":"c","changes":[1]}"#, #"{"clientId":"c","changes":[{"id":"1","op":"delete"}]}"#,
            #"{"clientId":"c","changes":[{"table":"","id":"1","op":"delete"}]}"#,
            #"{"clientId":"c","changes":[{"table":"\#(String(repeating: "t", count: 257))","id":"1","op":"delete"}]}"#,
            #"{"clientId":"c","changes":[{"table":"t","id":"1","op":"upsert"}]}"#,
            #"{"clientId":"c","changes":[{"table":"t","id":"1","op":"insert"}]}"#,
            #"{"clientId":"c","changes":[{"table":"t","id":"1","op":"insert","data":[]}]}"#,
            #"{"clientId":"c","changes":[{"table":"t","id":"1","op":"update","fields":[]}]}"#,
            #"{"clientId":"c","changes":[{"table":"t","id":"1","op":"update","fields":{"x":1}}]}"#,
            #"{"clientId":"c","changes":[{"table":"t","id":"1","op":"update","fields":{"x":{"value":1}}}]}"#,
            #"{"clientId":"c","changes":[{"table":"t","id":"1","op":"update","fields":{"x":{"value":1,"updatedAt":null,"at":"2026-01-01T00:00:00Z"}}}]}"#,
            #"{"clientId":"c","changes":[{"table":"t","id":"1","op":"update","fields":{"_x":{"value":1,"at":"soon"}}}]}"#,
            #"{"clientId":"c","changes":[{"table":"t","id":"1","op":"update","fields":{"":{"value":1,"at":"2026-01-01T00:00:00Z"}}}]}"#,
            #"{"clientId":"c","changes":[{"table":"t","id":"1","op":"delete","deletedAt":"later"}]}"#,
            #"{"clientId":"c","changes":[{"table":"t","id":"1","op":"delete","deletedAt":1}]}"#,
            #"{"clientId":"c","changes":[{"table":"t","id":"1","op":"delete","schemaVersion":2}]}"#,
            #"{"clientId":"c","changes":[{"table":"t","id":"1","op":"insert","data":{"n":1e999}}]}"#,
            #"{"clientId":"c","changes":[{"table":"t","id":"1","op":"insert","data":{"n":01}}]}"#,
            #"{"clientId":"c","changes":[]} x"#,
        ]
        for text in refused {
            #expect(Self.tree(text) == nil, "the tree refuses \(text)")
            #expect(Self.scan(text) == nil, "\(text)")
        }
        // Pushes broken up byte by byte: whatever the scan still reads, the tree stores the same.
        var random = SplitMix64(seed: 19)
        let pieces = Array("{}[]\",:0-.e1 tn\\".utf8)
        var read = 0
        for round in 0..<4_000 {
            var bytes = Array(Self.plainPushes[round % 3].utf8)
            for _ in 0..<Int.random(in: 1...3, using: &random) {
                let at = Int.random(in: 0..<bytes.count, using: &random)
                switch Int.random(in: 0..<3, using: &random) {
                case 0: bytes.remove(at: at)
                case 1: bytes.insert(pieces.randomElement(using: &random)!, at: at)
                default: bytes[at] = pieces.randomElement(using: &random)!
                }
            }
            guard let text = String(validating: bytes, as: UTF8.self) else { continue }
            guard let scanned = Self.scan(text) else { continue }
            read += 1
            Self.expectSame(scanned, text)
        }
        // Some broken-up pushes are still pushes (a space, a digit, a letter of a string changed).
        #expect(read > 100)
    }
}
