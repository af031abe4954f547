import HTTPKit

/// A push's changes as `sync.push_rows` (migration 0017) takes them: one `text[]` per column,
/// `''` for an absent value, and the two ends of each change's served text, which PostgreSQL
/// joins around the data and fields columns' text and closes with the event id it draws. Built
/// once per push, in one pass over the validated changes, each value written once; a batch of
/// pushes sends their columns one after another.
struct PushRows: Sendable {
    /// The columns, in `sync.push_rows`' order of parameters.
    enum Column: Int, CaseIterable {
        case tables, records, ops, data, fields, deleted, extras, spaces
        /// `{"table":…,"id":…,"op":"…"`
        case heads
        /// `,"deletedAt":…,"spaceId":…,…,"eventId":"`
        case tails
    }

    private(set) var columns = [TextArrayParameter](repeating: TextArrayParameter(), count: Column.allCases.count)

    init() {}

    init(_ changes: [Change]) {
        columns[Column.heads.rawValue].reserveCapacity(64 * changes.count)
        columns[Column.tails.rawValue].reserveCapacity(24 * changes.count)
        columns[Column.data.rawValue].reserveCapacity(64 * changes.count)
        for change in changes { append(change) }
    }

    subscript(column: Column) -> TextArrayParameter { columns[column.rawValue] }

    /// The rows.
    var count: Int { columns[Column.tables.rawValue].count }

    /// The bytes the rows take in a bind message.
    var bytes: Int { columns.reduce(0) { $0 + $1.body.count } }

    private mutating func append(_ column: Column, _ write: (inout [UInt8]) -> Void) {
        columns[column.rawValue].append(write)
    }

    private mutating func append(_ column: Column, _ text: String) {
        columns[column.rawValue].append(text)
    }

    mutating func append(_ change: Change) {
        let space = change.spaceID
        let kept = change.storedExtras(space: space)
        append(.tables, change.table)
        append(.records, change.id)
        append(.ops, change.op.rawValue)
        append(.data) { out in if let value = change.data { JSONText.append(value, to: &out) } }
        append(.fields) { out in if let value = change.fields { JSONText.append(value, to: &out) } }
        append(.deleted, change.deletedAt ?? "")
        append(.extras) { out in
            guard !kept.isEmpty else { return }
            out.append(UInt8(ascii: "{"))
            JSONText.appendMembers(kept, to: &out)
            out.append(UInt8(ascii: "}"))
        }
        append(.spaces, space ?? "")
        append(.heads) { Change.appendHead(table: change.table, id: change.id, op: change.op, to: &$0) }
        append(.tails) { change.appendServedTail(space: space, extras: kept, to: &$0) }
    }

    /// Appends a change read as text (``PushScan``): `table`, `id` and `deletedAt` are string
    /// contents without escapes, `data` and `fields` JSON text or empty for none, `extras` the
    /// members of the extras object (`"name":value,…`) or empty; no space. The same row
    /// ``append(_:)`` writes for that change.
    mutating func append(
        table: Slice<UnsafeBufferPointer<UInt8>>, id: Slice<UnsafeBufferPointer<UInt8>>, op: Change.Operation, data: ArraySlice<UInt8>,
        fields: ArraySlice<UInt8>, deletedAt: Slice<UnsafeBufferPointer<UInt8>>?, extras: [UInt8]
    ) {
        append(.tables) { $0.append(contentsOf: table) }
        append(.records) { $0.append(contentsOf: id) }
        append(.ops, op.rawValue)
        append(.data) { $0.append(contentsOf: data) }
        append(.fields) { $0.append(contentsOf: fields) }
        append(.deleted) { out in if let deletedAt { out.append(contentsOf: deletedAt) } }
        append(.extras) { out in
            guard !extras.isEmpty else { return }
            out.append(UInt8(ascii: "{"))
            out.append(contentsOf: extras)
            out.append(UInt8(ascii: "}"))
        }
        append(.spaces, "")
        append(.heads) { out in
            out.append(contentsOf: #"{"table":""#.utf8)
            out.append(contentsOf: table)
            out.append(contentsOf: #"","id":""#.utf8)
            out.append(contentsOf: id)
            out.append(contentsOf: #"","op":""#.utf8)
            out.append(contentsOf: op.rawValue.utf8)
            out.append(UInt8(ascii: "\""))
        }
        append(.tails) { out in
            if let deletedAt {
                out.append(contentsOf: #","deletedAt":""#.utf8)
                out.append(contentsOf: deletedAt)
                out.append(UInt8(ascii: "\""))
            }
            if !extras.isEmpty {
                out.append(UInt8(ascii: ","))
                out.append(contentsOf: extras)
            }
            out.append(contentsOf: #","eventId":""#.utf8)
        }
    }

    mutating func append(contentsOf other: PushRows) {
        for index in columns.indices { columns[index].append(contentsOf: other.columns[index]) }
    }
}
