import HTTPKit

/// A push's changes as `sync.push_rows` (migration 0017) takes them: one `text[]` per column,
/// `''` for an absent value, and the two ends of each change's served text, which PostgreSQL
/// joins around the data and fields columns' text and closes with the event id it draws. Built
/// once per push, in one pass over the validated changes, each value written once; a batch of
/// pushes sends their columns one after another.
struct PushRows: Sendable {
    private(set) var tables = TextArrayParameter()
    private(set) var records = TextArrayParameter()
    private(set) var ops = TextArrayParameter()
    private(set) var data = TextArrayParameter()
    private(set) var fields = TextArrayParameter()
    private(set) var deleted = TextArrayParameter()
    private(set) var extras = TextArrayParameter()
    private(set) var spaces = TextArrayParameter()
    /// `{"table":…,"id":…,"op":"…"`
    private(set) var heads = TextArrayParameter()
    /// `,"deletedAt":…,"spaceId":…,…,"eventId":"`
    private(set) var tails = TextArrayParameter()

    init() {}

    init(_ changes: [Change]) {
        heads.reserveCapacity(64 * changes.count)
        tails.reserveCapacity(24 * changes.count)
        data.reserveCapacity(64 * changes.count)
        for change in changes { append(change) }
    }

    /// The rows.
    var count: Int { tables.count }

    /// The bytes the rows take in a bind message.
    var bytes: Int { columns.reduce(0) { $0 + $1.body.count } }

    /// The columns in `sync.push_rows`' order of parameters.
    var columns: [TextArrayParameter] { [tables, records, ops, data, fields, deleted, extras, spaces, heads, tails] }

    mutating func append(_ change: Change) {
        let space = change.spaceID
        let kept = change.storedExtras(space: space)
        tables.append(change.table)
        records.append(change.id)
        ops.append(change.op.rawValue)
        data.append { out in if let value = change.data { JSONText.append(value, to: &out) } }
        fields.append { out in if let value = change.fields { JSONText.append(value, to: &out) } }
        deleted.append(change.deletedAt ?? "")
        extras.append { out in
            guard !kept.isEmpty else { return }
            out.append(UInt8(ascii: "{"))
            JSONText.appendMembers(kept, to: &out)
            out.append(UInt8(ascii: "}"))
        }
        spaces.append(space ?? "")
        heads.append { Change.appendHead(table: change.table, id: change.id, op: change.op, to: &$0) }
        tails.append { change.appendServedTail(space: space, extras: kept, to: &$0) }
    }

    mutating func append(contentsOf other: PushRows) {
        tables.append(contentsOf: other.tables)
        records.append(contentsOf: other.records)
        ops.append(contentsOf: other.ops)
        data.append(contentsOf: other.data)
        fields.append(contentsOf: other.fields)
        deleted.append(contentsOf: other.deleted)
        extras.append(contentsOf: other.extras)
        spaces.append(contentsOf: other.spaces)
        heads.append(contentsOf: other.heads)
        tails.append(contentsOf: other.tails)
    }
}
