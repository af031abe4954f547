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
    struct Row: Sendable {
        let cursor: Int64
        let op: Change.Operation
        /// An update's fields with their timestamp text (`at`, else `updatedAt`, else empty);
        /// nil when the update's `fields` is not a JSON object.
        var fields: [Field]? = nil
    }

    struct Field: Sendable, Equatable {
        let name: String
        let stamp: String
    }

    /// What to change for one record.
    struct Plan: Sendable, Equatable {
        /// The last row, made the folded update: each field with the cursor of the row whose
        /// entry wins it (sorted by name).
        struct Rewrite: Sendable, Equatable {
            let target: Int64
            let sources: [Source]
        }

        struct Source: Sendable, Equatable {
            let name: String
            let cursor: Int64
        }

        var rewrite: Rewrite?
        /// Rows to delete.
        var remove: [Int64]

        var isEmpty: Bool { rewrite == nil && remove.isEmpty }
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
        private var last: Row?
        /// False after an update no client can compare (until the next reset overwrites it).
        private var foldable = true

        init() {}

        mutating func add(_ row: Row) {
            cursors.append(row.cursor)
            last = row
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
            for field in fields {
                guard let instant = Timestamp.parseMicroseconds(field.stamp) else {
                    foldable = false
                    return
                }
                // Rows come in cursor order, so a tie goes to the later one.
                if let current = winners[field.name], current.instant > instant { continue }
                winners[field.name] = (instant, row.cursor)
            }
        }

        /// The plan of the rows added since the last call; the planner starts afresh for the
        /// next record (keeping its buffers).
        mutating func finish() -> Plan? {
            defer {
                cursors.removeAll(keepingCapacity: true)
                winners.removeAll(keepingCapacity: true)
                reset = nil
                last = nil
                foldable = true
            }
            guard let last else { return Plan(rewrite: nil, remove: []) }
            guard foldable else { return nil }
            var rewrite: Plan.Rewrite?
            // Field names are unique within a row, so winners all from the last row and as
            // many as its fields means the last row carries the fold already.
            if last.op == .update,
                winners.count != last.fields?.count || winners.values.contains(where: { $0.cursor != last.cursor })
            {
                rewrite = Plan.Rewrite(
                    target: last.cursor,
                    sources: winners.map { Plan.Source(name: $0.key, cursor: $0.value.cursor) }.sorted { $0.name < $1.name })
            }
            let reset = self.reset
            return Plan(rewrite: rewrite, remove: cursors.filter { $0 != last.cursor && $0 != reset })
        }
    }
}
