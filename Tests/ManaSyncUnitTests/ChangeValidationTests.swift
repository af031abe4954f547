import Foundation
import HTTPKit
import Testing

@testable import ManaSync

/// One change of a push, validated (no database; the HTTP answers are PushPullTests').
@Suite struct ChangeValidationTests {
    static func refusal(_ change: JSONValue, index: Int = 3) -> APIError? {
        do {
            _ = try Change(validating: change, index: index)
            return nil
        } catch let error as APIError {
            return error
        } catch {
            return nil
        }
    }

    @Test func eachKindOfBadChangeIsRefusedNamingItsIndexAndField() {
        let cases: [(JSONValue, String)] = [
            (["id": "1", "op": "insert", "data": [:]], "table"),
            (["table": "", "id": "1", "op": "insert", "data": [:]], "table"),
            (["table": .string(String(repeating: "t", count: 257)), "id": "1", "op": "insert", "data": [:]], "table"),
            (["table": "t", "id": 5, "op": "insert", "data": [:]], "id"),
            (["table": "t", "id": "1", "op": "upsert"], "op"),
            (["table": "t", "id": "1", "op": "insert", "data": "text"], "data"),
            (["table": "t", "id": "1", "op": "update", "fields": ["a"]], "fields"),
            (["table": "t", "id": "1", "op": "update", "fields": ["a": 1]], "fields.a"),
            (["table": "t", "id": "1", "op": "update", "fields": ["a": ["value": 1, "updatedAt": "yesterday"]]], "fields.a.updatedAt"),
            (["table": "t", "id": "1", "op": "update", "fields": ["a": ["value": 1]]], "fields.a.at"),
            (["table": "t", "id": "1", "op": "delete", "deletedAt": 7], "deletedAt"),
            (["table": "t", "id": "1", "op": "insert", "data": [:], "schemaVersion": 2], "schemaVersion"),
            (["table": "t", "id": "1", "op": "insert", "data": [:], "schemaVersion": 0], "schemaVersion"),
        ]
        for (change, field) in cases {
            let error = Self.refusal(change)
            #expect(error?.status == .badRequest, "\(change)")
            #expect(error?.details?["field"] == .string(field), "\(change): \(String(describing: error))")
            #expect(error?.details?["index"] == 3)
            #expect(error?.message.hasPrefix("changes[3].\(field) ") == true, "\(String(describing: error?.message))")
        }
        #expect(Self.refusal("not an object")?.message == "changes[3] must be an object")
    }

    @Test func anUpdateKeepsEveryFieldWithItsStampAndAMissingValueIsNull() throws {
        let change = try Change(
            validating: ["table": "t", "id": "1", "op": "update",
                         "fields": ["a": ["value": 1, "updatedAt": "2026-01-01T00:00:00Z"], "b": ["at": "2026-01-01T00:00:00.123456789Z"]]],
            index: 0)
        #expect(change.fields == ["a": ["value": 1, "updatedAt": "2026-01-01T00:00:00Z"], "b": ["value": .null, "at": "2026-01-01T00:00:00.123456789Z"]])
        #expect(!change.changesNothing)
    }

    @Test func anUpdateWithoutFieldsOrWithOnlyInternalOnesChangesNothing() throws {
        for fields: JSONValue? in [nil, .null, [:], ["_updatedAt": ["value": 1, "updatedAt": "2026-01-01T00:00:00Z"]]] {
            var object: [String: JSONValue] = ["table": "t", "id": "1", "op": "update"]
            if let fields { object["fields"] = fields }
            #expect(try Change(validating: .object(object), index: 0).changesNothing, "\(String(describing: fields))")
        }
    }

    @Test func unknownKeysAreKeptVerbatimButAClientEventIdIsNot() throws {
        let change = try Change(
            validating: ["table": "t", "id": "1", "op": "delete", "deletedAt": "2026-01-01T00:00:00Z", "spaceId": "s1",
                         "actor": ["id": "u"], "eventId": "mine", "schemaVersion": 1],
            index: 0)
        #expect(change.extra == ["spaceId": "s1", "actor": ["id": "u"], "schemaVersion": 1])
        #expect(change.deletedAt == "2026-01-01T00:00:00Z")
        #expect(try Self.stored([change]) == [["table": "t", "id": "1", "op": "delete", "deletedAt": "2026-01-01T00:00:00Z",
                                              "s": "s1", "x": ["actor": ["id": "u"], "schemaVersion": 1]]])
        // A hard delete has no deletedAt.
        #expect(try Change(validating: ["table": "t", "id": "1", "op": "delete"], index: 0).deletedAt == nil)
    }

    /// The storage text of `changes`, read back.
    static func stored(_ changes: [Change]) throws -> JSONValue {
        try JSONDecoder().decode(JSONValue.self, from: Data(Change.storageJSON(changes, capacity: 16)))
    }

    /// The storage text has each change's known keys as it came and its extras under `x`,
    /// with awkward strings and numbers intact.
    @Test func theStorageTextKeepsEveryChangeAsItCame() throws {
        let changes = try [
            Change(validating: ["table": "t", "id": "a\"b", "op": "insert", "data": ["n": .number(1.5), "s": "line\nbreak", "nested": [[1, .null, true]]]], index: 0),
            Change(validating: ["table": "t", "id": "1", "op": "update", "fields": ["title": ["value": "ü ✓", "updatedAt": "2026-01-01T00:00:00Z"]]], index: 1),
            Change(validating: ["table": "t", "id": "1", "op": "delete", "deletedAt": "2026-01-01T00:00:00Z", "spaceId": "s1", "actor": ["id": "u"]], index: 2),
            Change(validating: ["table": "t", "id": "2", "op": "delete"], index: 3),
        ]
        #expect(try Self.stored(changes) == [
            ["table": "t", "id": "a\"b", "op": "insert", "data": ["n": .number(1.5), "s": "line\nbreak", "nested": [[1, .null, true]]]],
            ["table": "t", "id": "1", "op": "update", "fields": ["title": ["value": "ü ✓", "updatedAt": "2026-01-01T00:00:00Z"]]],
            ["table": "t", "id": "1", "op": "delete", "deletedAt": "2026-01-01T00:00:00Z", "s": "s1", "x": ["actor": ["id": "u"]]],
            ["table": "t", "id": "2", "op": "delete"],
        ])
    }

    /// The space is resolved as the original does (spaces.md section 1): the top-level
    /// `spaceId`, then `data.spaceId`, then `fields.spaceId.value`; the first non-empty string.
    @Test func theSpaceComesFromTheTopLevelThenDataThenFields() throws {
        let stamp: JSONValue = "2026-01-01T00:00:00Z"
        let cases: [(JSONValue, String?)] = [
            (["table": "t", "id": "1", "op": "insert", "data": ["spaceId": "inner"], "spaceId": "top"], "top"),
            (["table": "t", "id": "1", "op": "insert", "data": ["spaceId": "inner"], "spaceId": ""], "inner"),
            (["table": "t", "id": "1", "op": "insert", "data": ["spaceId": "inner"], "spaceId": 7], "inner"),
            (["table": "t", "id": "1", "op": "update", "fields": ["spaceId": ["value": "field", "at": stamp]]], "field"),
            (["table": "t", "id": "1", "op": "update", "fields": ["spaceId": ["value": 3, "at": stamp]]], nil),
            (["table": "t", "id": "1", "op": "insert", "data": ["title": "x"]], nil),
            (["table": "t", "id": "1", "op": "delete", "spaceId": "_personal:u1"], "_personal:u1"),
        ]
        for (value, expected) in cases {
            #expect(try Change(validating: value, index: 0).spaceID == expected, "\(value)")
        }
        // A top-level spaceId that is not the space stays verbatim among the extras.
        let odd = try Change(validating: ["table": "t", "id": "1", "op": "insert", "data": ["spaceId": "inner"], "spaceId": 7], index: 0)
        #expect(try Self.stored([odd]) == [["table": "t", "id": "1", "op": "insert", "data": ["spaceId": "inner"], "s": "inner", "x": ["spaceId": 7]]])
    }
}

/// A push's rows as `sync.push_rows` takes them (migration 0017): one text per column and row,
/// `''` for an absent value, and the served text up to the event id that PostgreSQL closes.
@Suite struct PushRowsTests {
    /// The elements of a column, read back from the array's body.
    static func elements(_ column: TextArrayParameter) -> [String] {
        var out: [String] = []
        var index = 0
        let body = column.body
        while index < body.count {
            let length = body[index..<index + 4].reduce(0) { $0 << 8 | Int($1) }
            out.append(String(decoding: body[index + 4..<index + 4 + length], as: UTF8.self))
            index += 4 + length
        }
        return out
    }

    static func json(_ text: String) throws -> JSONValue { try JSONDecoder().decode(JSONValue.self, from: Data(text.utf8)) }

    @Test func eachColumnHoldsItsValueOrNothingAndTheServedTextIsTheChangeAsServed() throws {
        let changes = try [
            Change(validating: ["table": "t", "id": "a\"b", "op": "insert", "data": ["n": .number(1.5), "s": "line\nbreak é"],
                                "actor": "device 7"], index: 0),
            Change(validating: ["table": "t", "id": "1", "op": "update", "spaceId": "_personal:u",
                                "fields": ["title": ["value": "ü ✓", "updatedAt": "2026-01-01T00:00:00Z"], "gone": ["at": "2026-01-01T00:00:00Z"]]],
                   index: 1),
            Change(validating: ["table": "t", "id": "2", "op": "delete", "deletedAt": "2026-01-01T00:00:00Z", "spaceId": "", "x": 1], index: 2),
            Change(validating: ["table": "t", "id": "3", "op": "insert", "data": ["spaceId": "_personal:u", "k": .null]], index: 3),
        ]
        let rows = PushRows(changes)
        #expect(rows.count == 4)
        #expect(rows.columns.allSatisfy { $0.count == 4 })
        #expect(Self.elements(rows[.tables]) == ["t", "t", "t", "t"])
        #expect(Self.elements(rows[.records]) == ["a\"b", "1", "2", "3"])
        #expect(Self.elements(rows[.ops]) == ["insert", "update", "delete", "insert"])
        let data = Self.elements(rows[.data])
        #expect(try Self.json(data[0]) == ["n": .number(1.5), "s": "line\nbreak é"])
        #expect(data[1] == "" && data[2] == "")
        #expect(try Self.json(Self.elements(rows[.fields])[1])
            == ["title": ["value": "ü ✓", "updatedAt": "2026-01-01T00:00:00Z"], "gone": ["at": "2026-01-01T00:00:00Z", "value": .null]])
        #expect(Self.elements(rows[.deleted]) == ["", "", "2026-01-01T00:00:00Z", ""])
        // A top-level spaceId the space came from goes to the space column, not the extras.
        let extras = Self.elements(rows[.extras])
        #expect(try Self.json(extras[0]) == ["actor": "device 7"])
        #expect(extras[1] == "")
        #expect(try Self.json(extras[2]) == ["spaceId": "", "x": 1])
        #expect(extras[3] == "")
        #expect(Self.elements(rows[.spaces]) == ["", "_personal:u", "", "_personal:u"])
        // The served text, put together as PostgreSQL does: the change as served (sync.change_json).
        let (heads, fields, tails) = (Self.elements(rows[.heads]), Self.elements(rows[.fields]), Self.elements(rows[.tails]))
        let served = try (0..<rows.count).map { row in
            let text = heads[row] + (data[row].isEmpty ? "" : #","data":"# + data[row])
                + (fields[row].isEmpty ? "" : #","fields":"# + fields[row]) + tails[row] + #"e-1"}"#
            return try Self.json(text)
        }
        #expect(served[0] == ["table": "t", "id": "a\"b", "op": "insert", "data": ["n": .number(1.5), "s": "line\nbreak é"], "actor": "device 7",
                              "eventId": "e-1"])
        #expect(served[1] == ["table": "t", "id": "1", "op": "update", "spaceId": "_personal:u", "eventId": "e-1",
                              "fields": ["title": ["value": "ü ✓", "updatedAt": "2026-01-01T00:00:00Z"], "gone": ["at": "2026-01-01T00:00:00Z", "value": .null]]])
        #expect(served[2] == ["table": "t", "id": "2", "op": "delete", "deletedAt": "2026-01-01T00:00:00Z", "spaceId": "", "x": 1, "eventId": "e-1"])
        #expect(served[3] == ["table": "t", "id": "3", "op": "insert", "data": ["spaceId": "_personal:u", "k": .null], "spaceId": "_personal:u",
                              "eventId": "e-1"])
    }

    @Test func pushesOfABatchSendTheirRowsOneAfterAnother() throws {
        let first = PushRows([try Change(validating: ["table": "a", "id": "1", "op": "delete"], index: 0)])
        var both = first
        both.append(contentsOf: PushRows([try Change(validating: ["table": "b", "id": "2", "op": "delete"], index: 0),
                                          try Change(validating: ["table": "c", "id": "3", "op": "delete"], index: 1)]))
        #expect(both.count == 3)
        #expect(Self.elements(both[.tables]) == ["a", "b", "c"])
        #expect(Self.elements(both[.records]) == ["1", "2", "3"])
        #expect(both.bytes == both.columns.reduce(0) { $0 + $1.body.count } && both.bytes > first.bytes)
    }
}
