import HTTPKit

/// One record change, as the wire carries it (`sync-protocol.md` section 2, widened by the
/// compatibility contract in `docs/compatibility.md`).
struct Change: Sendable, Equatable {
    enum Operation: String, Sendable { case insert, update, delete }

    /// The schema version of changes this server understands.
    static let supportedSchemaVersion = 1
    /// Keys with a meaning of their own; every other key of a change is kept verbatim.
    static let knownKeys: Set<String> = ["table", "id", "op", "data", "fields", "deletedAt"]

    let table: String
    let id: String
    let op: Operation
    /// The whole record (`insert`).
    let data: JSONValue?
    /// Field name → `{value, updatedAt}` or `{value, at}` (`update`); an entry sent without
    /// `value` carries `"value": null`.
    let fields: JSONValue?
    /// Soft-delete time as the client sent it (`delete`); absent means a hard delete.
    let deletedAt: String?
    /// Every other key of the change (`spaceId`, `actor`, `origin`, `schemaVersion`, …), stored
    /// and served verbatim; a client's `eventId` is not kept (the server assigns its own).
    let extra: [String: JSONValue]

    /// An update that changes nothing (no or empty `fields`, or only internal ones): accepted,
    /// not stored.
    var changesNothing: Bool {
        guard op == .update, let members = fields?.objectValue else { return false }
        return members.keys.allSatisfy(Self.isInternalField)
    }

    /// The shared space the change belongs to (spaces.md section 1): the first non-empty string
    /// of the top-level `spaceId`, `data.spaceId` and `fields.spaceId.value`; nil for none.
    /// `_personal:<userId>` names the author's own space.
    var spaceID: String? {
        for candidate in [extra["spaceId"], data?["spaceId"], fields?["spaceId"]?["value"]] {
            if let text = candidate?.stringValue, !text.isEmpty { return text }
        }
        return nil
    }

    /// A field the local-store clients keep for themselves (`_updatedAt`, `__meta`, …).
    static func isInternalField(_ name: String) -> Bool { name.hasPrefix("_") }

    /// Appends the change as JSON for storage: the known keys, the space under `s` and the
    /// extras under `x`.
    func appendStorageJSON(to out: inout [UInt8]) {
        Change.appendHead(table: table, id: id, op: op, to: &out)
        if let data {
            out.append(contentsOf: #","data":"#.utf8)
            JSONText.append(data, to: &out)
        }
        if let fields {
            out.append(contentsOf: #","fields":"#.utf8)
            JSONText.append(fields, to: &out)
        }
        if let deletedAt {
            out.append(contentsOf: #","deletedAt":"#.utf8)
            JSONText.appendString(deletedAt, to: &out)
        }
        // The space goes to its own column; a top-level `spaceId` it came from is served from there.
        let space = spaceID
        if let space {
            out.append(contentsOf: #","s":"#.utf8)
            JSONText.appendString(space, to: &out)
        }
        let kept = storedExtras(space: space)
        if !kept.isEmpty {
            out.append(contentsOf: #","x":{"#.utf8)
            JSONText.appendMembers(kept, to: &out)
            out.append(UInt8(ascii: "}"))
        }
        out.append(UInt8(ascii: "}"))
    }

    /// The extras kept in the `extra` column: all of them, but a top-level `spaceId` that the
    /// change's space came from (the `space_id` column holds it).
    func storedExtras(space: String?) -> [String: JSONValue] {
        space != nil && extra["spaceId"]?.stringValue == space ? extra.filter { $0.key != "spaceId" } : extra
    }

    /// Appends the end of the change's served text after its data and fields, up to its event
    /// id: `,"deletedAt":…` when there is one, the space as `spaceId` and the other extras
    /// (`sync.extra_out`), then `,"eventId":"`. `sync.push_rows` (migration 0017) puts the
    /// text together: ``appendHead(table:id:op:to:)``'s opening, `,"data":` and `,"fields":`
    /// with their columns' text, this, the event id it draws and `"}`: the members
    /// `sync.change_json` serves (migration 0006), compact.
    func appendServedTail(space: String?, extras: [String: JSONValue], to out: inout [UInt8]) {
        if let deletedAt {
            out.append(contentsOf: #","deletedAt":"#.utf8)
            JSONText.appendString(deletedAt, to: &out)
        }
        if let space {
            out.append(contentsOf: #","spaceId":"#.utf8)
            JSONText.appendString(space, to: &out)
        }
        for (name, value) in extras where space == nil || name != "spaceId" {
            out.append(UInt8(ascii: ","))
            JSONText.appendString(name, to: &out)
            out.append(UInt8(ascii: ":"))
            JSONText.append(value, to: &out)
        }
        out.append(contentsOf: #","eventId":""#.utf8)
    }

    /// `{"table":…,"id":…,"op":"…"`: the opening every change's JSON text shares.
    static func appendHead(table: String, id: String, op: Operation, to out: inout [UInt8]) {
        out.append(contentsOf: #"{"table":"#.utf8)
        JSONText.appendString(table, to: &out)
        out.append(contentsOf: #","id":"#.utf8)
        JSONText.appendString(id, to: &out)
        out.append(contentsOf: #","op":""#.utf8)
        out.append(contentsOf: op.rawValue.utf8)
        out.append(UInt8(ascii: "\""))
    }

    /// A push's changes as one JSON array for storage.
    static func storageJSON(_ changes: [Change], capacity: Int) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(capacity)
        out.append(UInt8(ascii: "["))
        for (index, change) in changes.enumerated() {
            if index > 0 { out.append(UInt8(ascii: ",")) }
            change.appendStorageJSON(to: &out)
        }
        out.append(UInt8(ascii: "]"))
        return out
    }

    /// Validates one change of a push; errors name the change's index and field.
    init(validating value: JSONValue, index: Int) throws {
        func bad(_ field: String, _ problem: String) -> APIError {
            APIError(.badRequest, message: "changes[\(index)].\(field) \(problem)",
                     details: ["index": .number(Double(index)), "field": .string(field)])
        }
        guard let object = value.objectValue else {
            throw APIError(.badRequest, message: "changes[\(index)] must be an object", details: ["index": .number(Double(index))])
        }
        func name(_ field: String) throws -> String {
            guard let text = object[field]?.stringValue, !text.isEmpty else { throw bad(field, "must be a non-empty string") }
            guard text.count <= 256 else { throw bad(field, "must be at most 256 characters") }
            return text
        }
        table = try name("table")
        id = try name("id")
        guard let opText = object["op"]?.stringValue, let op = Operation(rawValue: opText) else {
            throw bad("op", "must be insert, update or delete")
        }
        self.op = op
        if let version = object["schemaVersion"] {
            try Self.checkSchemaVersion(version) { bad("schemaVersion", $0) }
        }
        extra = object.filter { !Self.knownKeys.contains($0.key) && $0.key != "eventId" }
        switch op {
        case .insert:
            guard case .object = object["data"] else { throw bad("data", "must be an object for an insert") }
            data = object["data"]
            fields = nil
            deletedAt = nil
        case .update:
            // The original accepted an update without `fields` and served it without content;
            // refusing it would make the client resend its queue forever. It changes nothing.
            let members: [String: JSONValue]
            switch object["fields"] {
            case nil, .null?: members = [:]
            case .object(let given)?: members = given
            default: throw bad("fields", "must be an object for an update")
            }
            var normalized: [String: JSONValue] = [:]
            for (field, entry) in members {
                guard !field.isEmpty, field.count <= 256 else { throw bad("fields", "has a field name that is empty or over 256 characters") }
                guard var entry = entry.objectValue else {
                    throw bad("fields.\(field)", "must be an object with value and updatedAt (or at)")
                }
                let stampKey = entry["updatedAt"] != nil ? "updatedAt" : "at"
                guard let stamp = entry[stampKey]?.stringValue, Timestamp.parseMicroseconds(stamp) != nil else {
                    throw bad("fields.\(field).\(stampKey)", "must be an RFC 3339 timestamp")
                }
                // JavaScript drops `value: undefined`: a missing value is null.
                if entry["value"] == nil { entry["value"] = .null }
                normalized[field] = .object(entry)
            }
            fields = .object(normalized)
            data = nil
            deletedAt = nil
        case .delete:
            data = nil
            fields = nil
            switch object["deletedAt"] {
            case nil, .null?:
                deletedAt = nil
            case .string(let text)? where Timestamp.parseMicroseconds(text) != nil:
                deletedAt = text
            default:
                throw bad("deletedAt", "must be an RFC 3339 timestamp")
            }
        }
    }

    /// A `schemaVersion` must be a whole number from 1 to the supported version.
    static func checkSchemaVersion(_ value: JSONValue, _ error: (String) -> APIError) throws {
        guard case .number(let number) = value, number == number.rounded(), number >= 1 else {
            throw error("must be a whole number from 1")
        }
        guard number <= Double(supportedSchemaVersion) else {
            throw error("\(Int(number)) is not supported; this server supports schema version \(supportedSchemaVersion)")
        }
    }
}
