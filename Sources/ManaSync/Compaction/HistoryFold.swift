import HTTPKit

/// How one record's old changes fold into at most two rows (docs/sync.md, "Compacted history").
///
/// Clients apply changes in cursor order with the rule of ``ClientModel``: an insert
/// replaces the record, a delete ends it (a tombstone, or nothing for a hard delete), and an
/// update merges field by field, the later `at`/`updatedAt` winning and, on equal instants,
/// the change received later. So only the last insert or delete (the *reset*) and the
/// updates after it shape the record; everything before the reset is overwritten by it.
///
/// The fold of a record's changes up to the horizon keeps:
/// - the reset, untouched at its cursor (a record whose last change is a delete keeps only
///   that tombstone);
/// - the last change when it is an update, carrying for every field the winning entry of all
///   updates after the reset, verbatim, each with its own timestamp.
///
/// Every other row goes. A client at any cursor that applies the remaining rows ends where
/// the full history would have taken it: before the reset the reset overwrites what it
/// lacked; after it, the last row's entries win every field exactly as the missing updates
/// would have. No row moves and no cursor is made up.
///
/// A record is left alone when one of its updates has fields that are not an object, or an
/// entry whose timestamp is not RFC 3339: there the client's comparison is not known, so no
/// fold can promise the same result.
enum HistoryFold {
    /// One stored change of the record, as the compactor reads it.
    struct Row: Sendable, Equatable {
        let cursor: Int64
        let op: Change.Operation
        /// An update's field names with their timestamp text (`at`, else `updatedAt`, else
        /// empty); nil when the update's `fields` is not a JSON object.
        let fields: [(name: String, stamp: String)]?

        init(cursor: Int64, op: Change.Operation, fields: [(name: String, stamp: String)]? = nil) {
            self.cursor = cursor
            self.op = op
            self.fields = fields
        }

        static func == (lhs: Row, rhs: Row) -> Bool {
            lhs.cursor == rhs.cursor && lhs.op == rhs.op
                && lhs.fields?.map(\.name) == rhs.fields?.map(\.name) && lhs.fields?.map(\.stamp) == rhs.fields?.map(\.stamp)
        }
    }

    /// What to change for one record.
    struct Plan: Sendable, Equatable {
        /// The last row, when it becomes the folded update: each field name with the cursor
        /// of the row whose entry wins it (sorted by name).
        var rewrite: (target: Int64, sources: [(name: String, cursor: Int64)])?
        /// Rows to delete.
        var remove: [Int64]

        var isEmpty: Bool { rewrite == nil && remove.isEmpty }

        static func == (lhs: Plan, rhs: Plan) -> Bool {
            lhs.remove == rhs.remove && lhs.rewrite?.target == rhs.rewrite?.target
                && lhs.rewrite?.sources.map(\.name) == rhs.rewrite?.sources.map(\.name)
                && lhs.rewrite?.sources.map(\.cursor) == rhs.rewrite?.sources.map(\.cursor)
        }
    }

    /// The plan for one record's rows at or before the horizon, in cursor order. Nil when the
    /// record cannot be folded (see the type's comment); an empty plan when it is folded already.
    static func plan(_ rows: [Row]) -> Plan? {
        var planner = Planner()
        for row in rows { planner.add(row) }
        return planner.finish()
    }

    /// Plans a record as its rows go by, in cursor order, keeping their cursors and one entry
    /// per field, not the rows: a record with a million updates costs 8 MB of cursors.
    struct Planner {
        private var cursors: [Int64] = []
        private var reset: Int64?
        /// For each field: the winning (instant, cursor) among the updates after the reset.
        private var winners: [String: (instant: Int64, cursor: Int64)] = [:]
        private var last: (cursor: Int64, op: Change.Operation, fields: Set<String>)?
        /// False after an update no client can compare (until the next reset overwrites it).
        private var foldable = true

        init() {}

        mutating func add(_ row: Row) {
            cursors.append(row.cursor)
            last = (row.cursor, row.op, Set(row.fields?.map(\.name) ?? []))
            guard row.op == .update else {
                reset = row.cursor
                winners.removeAll(keepingCapacity: true)
                foldable = true
                return
            }
            guard foldable, let fields = row.fields else {
                foldable = false
                return
            }
            for (name, stamp) in fields {
                guard let instant = Timestamp.parseMicroseconds(stamp) else {
                    foldable = false
                    return
                }
                // Rows come in cursor order, so a tie goes to the later one.
                if let current = winners[name], current.instant > instant { continue }
                winners[name] = (instant, row.cursor)
            }
        }

        /// The plan of the rows added since the last call, and a fresh start for the next record.
        mutating func finish() -> Plan? {
            defer { self = Planner() }
            guard let last else { return Plan(rewrite: nil, remove: []) }
            guard foldable else { return nil }
            var rewrite: (target: Int64, sources: [(name: String, cursor: Int64)])?
            if last.op == .update {
                let alreadyFolded = winners.count == last.fields.count && winners.values.allSatisfy { $0.cursor == last.cursor }
                if !alreadyFolded {
                    rewrite = (last.cursor, winners.map { ($0.key, $0.value.cursor) }.sorted { $0.name < $1.name })
                }
            }
            let reset = self.reset
            return Plan(rewrite: rewrite, remove: cursors.filter { $0 != last.cursor && $0 != reset })
        }
    }
}
