import HTTPKit

/// One record change, as the wire carries it (`sync-protocol.md` section 2).
struct Change: Sendable, Equatable {
    enum Operation: String, Sendable { case insert, update, delete }

    let table: String
    let id: String
    let op: Operation
    /// The whole record (`insert`).
    let data: JSONValue?
    /// Field name → `{value, updatedAt}` (`update`).
    let fields: JSONValue?
    /// Soft-delete time as the client sent it (`delete`); absent means a hard delete.
    let deletedAt: String?

    /// The change as JSON, in the shape it came in.
    var json: JSONValue {
        var object: [String: JSONValue] = ["table": .string(table), "id": .string(id), "op": .string(op.rawValue)]
        if let data { object["data"] = data }
        if let fields { object["fields"] = fields }
        if let deletedAt { object["deletedAt"] = .string(deletedAt) }
        return .object(object)
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
        switch op {
        case .insert:
            guard case .object = object["data"] else { throw bad("data", "must be an object for an insert") }
            data = object["data"]
            fields = nil
            deletedAt = nil
        case .update:
            guard let members = object["fields"]?.objectValue, !members.isEmpty else {
                throw bad("fields", "must be a non-empty object for an update")
            }
            for (field, entry) in members {
                guard !field.isEmpty, field.count <= 256 else { throw bad("fields", "has a field name that is empty or over 256 characters") }
                guard let entry = entry.objectValue, entry.keys.contains("value") else {
                    throw bad("fields.\(field)", "must be an object with value and updatedAt")
                }
                guard let updatedAt = entry["updatedAt"]?.stringValue, Timestamp.parseMicroseconds(updatedAt) != nil else {
                    throw bad("fields.\(field).updatedAt", "must be an RFC 3339 timestamp")
                }
            }
            fields = object["fields"]
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

    init(table: String, id: String, op: Operation, data: JSONValue?, fields: JSONValue?, deletedAt: String?) {
        self.table = table
        self.id = id
        self.op = op
        self.data = data
        self.fields = fields
        self.deletedAt = deletedAt
    }
}
