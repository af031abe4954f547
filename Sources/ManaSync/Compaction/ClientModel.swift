import HTTPKit

/// How a local-store client applies the changes it pulls, in cursor order: the rule the
/// compacted history is proven against (``HistoryFold``; the property tests and
/// `bench/compaction` apply pulls with it).
///
/// - `insert` puts the record: its `data` members become the fields, older than any update.
/// - `update` merges `fields` into the record, field by field: an entry wins when its
///   instant (`at`, else `updatedAt`) is not earlier than the field's, so on equal instants
///   the change received later wins (section 2 of the protocol). An update of a record the
///   client does not hold starts it from those fields; an update of a deleted record is
///   ignored.
/// - `delete` with `deletedAt` leaves a tombstone; without, the record is gone.
struct ClientModel: Equatable, Sendable {
    struct Key: Hashable, Sendable {
        let table: String
        let id: String
    }

    struct Field: Equatable, Sendable {
        var value: JSONValue
        /// Microseconds since the epoch; `Int64.min` for a value an insert brought.
        var instant: Int64
    }

    enum Record: Equatable, Sendable {
        case live([String: Field])
        case deleted(at: String)
    }

    private(set) var records: [Key: Record] = [:]

    init() {}

    /// Applies one change in its wire shape; a change that is not an object with `table`,
    /// `id` and a known `op` is ignored, as the web client's validation drops it.
    mutating func apply(_ change: JSONValue) {
        guard let members = change.objectValue, let table = members["table"]?.stringValue, let id = members["id"]?.stringValue,
            let op = members["op"]?.stringValue.flatMap(Change.Operation.init(rawValue:))
        else { return }
        let key = Key(table: table, id: id)
        switch op {
        case .insert:
            var fields: [String: Field] = [:]
            for (name, value) in members["data"]?.objectValue ?? [:] { fields[name] = Field(value: value, instant: .min) }
            records[key] = .live(fields)
        case .delete:
            records[key] = members["deletedAt"]?.stringValue.map { .deleted(at: $0) }
        case .update:
            var fields: [String: Field]
            switch records[key] {
            case .deleted: return
            case .live(let current): fields = current
            case nil: fields = [:]
            }
            for (name, entry) in members["fields"]?.objectValue ?? [:] {
                let entry = entry.objectValue ?? [:]
                let stamp = entry["at"]?.stringValue ?? entry["updatedAt"]?.stringValue
                let instant = stamp.flatMap(Timestamp.parseMicroseconds) ?? .min
                if let current = fields[name], current.instant > instant { continue }
                fields[name] = Field(value: entry["value"] ?? .null, instant: instant)
            }
            records[key] = .live(fields)
        }
    }

    mutating func apply<S: Sequence>(_ changes: S) where S.Element == JSONValue {
        for change in changes { apply(change) }
    }
}
