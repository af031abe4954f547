import HTTPKit

/// A push body read in one pass straight into `sync.push_rows`' columns (``PushRows``), without
/// a ``JSONValue`` tree: the common push of own rows. Each change's `data`, `fields` and extras
/// are copied as compact JSON text in the order the client wrote them, strings and numbers as
/// spelt (the columns are jsonb, and the served text is the same JSON).
///
/// It reads only plain pushes and says nil for anything else: every body the tree path would
/// refuse (so that path gives its error, which names the field), and what it reads with a
/// meaning of its own that this copy would not keep: a repeated member name (the tree keeps the
/// first), a trailing comma, a `\u` escape (the tree checks its surrogates and writes its own
/// escapes), an escape in a member name, table, id or timestamp, a byte order mark, an object of
/// more than ``maximumMembers`` members, and any `spaceId` (spaces are authorized from the
/// validated changes). A nil costs one scan: the controller then parses the body as before.
/// `PushScanTests` hold both paths to the same columns.
struct PushScan {
    /// The body's `clientId` and `since` (nil when absent or null); strings without escapes.
    let clientID: String?
    let since: String?
    /// The changes to store (updates that change nothing left out, as ``Change/changesNothing``).
    let rows: PushRows
    /// The tables of the stored changes, sorted, each once.
    let tables: [String]

    /// Most members of one object read here; more go to the tree path.
    static let maximumMembers = 64

    /// The push in `body` (UTF-8, as ``BodyDecoder`` checked it), or nil where the tree path must read it.
    init?(_ body: UnsafeBufferPointer<UInt8>, maximumChanges: Int) {
        var reader = Reader(bytes: body, maximumChanges: maximumChanges)
        guard (try? reader.push()) != nil else { return nil }
        clientID = reader.clientID
        since = reader.since
        rows = reader.rows
        tables = reader.tables.sorted()
    }

    /// Not a plain push: the tree path reads it.
    private struct NotPlain: Error {}

    private struct Reader {
        let bytes: UnsafeBufferPointer<UInt8>
        let maximumChanges: Int
        var index = 0
        var clientID: String?
        var since: String?
        var rows = PushRows()
        var tables: [String] = []
        /// The member names of the objects being read, innermost last (repeats are found here).
        var names: [Range<Int>] = []
        /// One change's text buffers, reused from change to change.
        var change = ChangeText()

        init(bytes: UnsafeBufferPointer<UInt8>, maximumChanges: Int) {
            self.bytes = bytes
            self.maximumChanges = maximumChanges
        }

        // MARK: The push

        mutating func push() throws {
            skipSpace()
            var sawChanges = false
            // A repeated member (the tree keeps the first) is not plain (``members(_:)``).
            try members { reader, name in
                switch reader.text(name) {
                case "clientId": reader.clientID = try reader.optionalPlainString()
                case "since": reader.since = try reader.optionalPlainString()
                case "schemaVersion":
                    if !reader.null() { try reader.checkSchemaVersion() }
                case "changes":
                    try reader.changes()
                    sawChanges = true
                default: try reader.skipValue()
                }
            }
            skipSpace()
            guard index == bytes.count, sawChanges else { throw NotPlain() }
        }

        mutating func changes() throws {
            try expect(UInt8(ascii: "["))
            skipSpace()
            if try closes(UInt8(ascii: "]")) { return }
            var count = 0
            repeat {
                count += 1
                guard count <= maximumChanges else { throw NotPlain() }
                skipSpace()
                try readChange()
            } while try !ends(UInt8(ascii: "]"))
        }

        /// One change, then its row (unless it changes nothing). Its text goes to buffers
        /// reused from change to change.
        mutating func readChange() throws {
            var change = ChangeText()
            swap(&change, &self.change)
            defer { swap(&change, &self.change) }
            change.reset()
            try members { reader, name in
                switch reader.text(name) {
                case "table": change.table = try reader.name()
                case "id": change.id = try reader.name()
                case "op":
                    guard let op = Change.Operation(rawValue: reader.text(try reader.plainString())) else { throw NotPlain() }
                    change.op = op
                case "data":
                    change.data.removeAll(keepingCapacity: true)
                    change.dataIsObject = reader.at(UInt8(ascii: "{"))
                    try reader.copyValue(into: &change.data, spaceIDMember: true)
                case "fields": try reader.readFields(into: &change)
                case "deletedAt":
                    // Null is no soft-delete time; a string must be a timestamp (for a delete).
                    if reader.null() {
                        (change.deletedAt, change.deletedAtValid) = (nil, true)
                    } else if reader.at(UInt8(ascii: "\"")), let range = try reader.peekPlainString() {
                        reader.index = range.upperBound + 1
                        (change.deletedAt, change.deletedAtValid) = (range, reader.isTimestamp(range))
                    } else {
                        try reader.skipValue()
                        (change.deletedAt, change.deletedAtValid) = (nil, false)
                    }
                case "eventId": try reader.skipValue()
                case "spaceId": throw NotPlain()
                case let extra:
                    if extra == "schemaVersion" {
                        let start = reader.index
                        try reader.checkSchemaVersion()
                        reader.index = start
                    }
                    if !change.extras.isEmpty { change.extras.append(UInt8(ascii: ",")) }
                    change.extras.append(contentsOf: reader.quoted(name))
                    change.extras.append(UInt8(ascii: ":"))
                    try reader.copyValue(into: &change.extras)
                }
            }
            try store(change)
        }

        /// `fields`: null, or an object of `{value, updatedAt | at}` entries, copied with a
        /// missing `value` written as null (``Change/init(validating:index:)``'s normalization).
        mutating func readFields(into change: inout ChangeText) throws {
            change.fields.removeAll(keepingCapacity: true)
            change.onlyInternalFields = true
            change.fieldsValid = true
            if null() { return }
            guard at(UInt8(ascii: "{")) else {
                change.fieldsValid = false
                return try skipValue()
            }
            var valid = true
            var onlyInternal = true
            change.fields.append(UInt8(ascii: "{"))
            var first = true
            try members { reader, name in
                if !first { change.fields.append(UInt8(ascii: ",")) }
                first = false
                let field = reader.text(name)
                if field == "spaceId" { throw NotPlain() }
                if !(1...256).contains(field.count) { valid = false }
                if !Change.isInternalField(field) { onlyInternal = false }
                change.fields.append(contentsOf: reader.quoted(name))
                change.fields.append(UInt8(ascii: ":"))
                guard reader.at(UInt8(ascii: "{")) else {
                    valid = false
                    return try reader.copyValue(into: &change.fields)
                }
                if try !reader.copyEntry(into: &change.fields) { valid = false }
            }
            change.fields.append(UInt8(ascii: "}"))
            change.fieldsValid = valid
            change.onlyInternalFields = onlyInternal
        }

        /// One field's entry, copied; false when its stamp (`updatedAt` when given, else `at`)
        /// is not an RFC 3339 timestamp.
        mutating func copyEntry(into out: inout [UInt8]) throws -> Bool {
            var value = false
            var updatedAt: Range<Int>??
            var at: Range<Int>??
            out.append(UInt8(ascii: "{"))
            var first = true
            try members { reader, name in
                if !first { out.append(UInt8(ascii: ",")) }
                first = false
                out.append(contentsOf: reader.quoted(name))
                out.append(UInt8(ascii: ":"))
                switch reader.text(name) {
                case "value": value = true
                case "updatedAt": updatedAt = .some(reader.at(UInt8(ascii: "\"")) ? try reader.peekPlainString() : nil)
                case "at": at = .some(reader.at(UInt8(ascii: "\"")) ? try reader.peekPlainString() : nil)
                default: break
                }
                try reader.copyValue(into: &out)
            }
            // JavaScript drops `value: undefined`: a missing value is null.
            if !value { out.append(contentsOf: (first ? #""value":null"# : #","value":null"#).utf8) }
            out.append(UInt8(ascii: "}"))
            guard let stamp = updatedAt ?? at, let stamp else { return false }
            return isTimestamp(stamp)
        }

        /// Checks the change read and appends its row, as ``Change/init(validating:index:)`` and
        /// ``PushRows/append(_:)`` would.
        mutating func store(_ change: ChangeText) throws {
            guard let table = change.table, let id = change.id, let op = change.op else { throw NotPlain() }
            switch op {
            case .insert:
                guard change.dataIsObject else { throw NotPlain() }
            case .update:
                guard change.fieldsValid else { throw NotPlain() }
                // No fields, or internal ones only: accepted, not stored.
                if change.onlyInternalFields { return }
            case .delete:
                guard change.deletedAtValid else { throw NotPlain() }
            }
            let tableText = text(table)
            if !tables.contains(tableText) { tables.append(tableText) }
            rows.append(
                table: bytes[table], id: bytes[id], op: op, data: op == .insert ? change.data[...] : [], fields: op == .update ? change.fields[...] : [],
                deletedAt: op == .delete ? change.deletedAt.map { bytes[$0] } : nil, extras: change.extras)
        }

        /// A table's or record's id: a non-empty string of at most 256 characters, without escapes.
        mutating func name() throws -> Range<Int> {
            let range = try plainString()
            guard !range.isEmpty, range.count <= 256 || text(range).count <= 256 else { throw NotPlain() }
            return range
        }

        /// A `schemaVersion` (of the push or a change) that ``Change/checkSchemaVersion(_:_:)`` accepts.
        mutating func checkSchemaVersion() throws {
            let start = index
            try skipValue()
            guard let value = try? JSONParser.parse(UnsafeBufferPointer(rebasing: bytes[start..<index])),
                (try? Change.checkSchemaVersion(value, { APIError.badRequest($0) })) != nil
            else { throw NotPlain() }
        }

        func isTimestamp(_ range: Range<Int>) -> Bool {
            Timestamp.parseMicroseconds(utf8: UnsafeBufferPointer(rebasing: bytes[range])) != nil
        }

        // MARK: JSON

        /// Reads an object's members: `read` is at each value, with the member's name (no
        /// escapes, not repeated).
        mutating func members(_ read: (inout Reader, Range<Int>) throws -> Void) throws {
            try expect(UInt8(ascii: "{"))
            skipSpace()
            if try closes(UInt8(ascii: "}")) { return }
            let outer = names.count
            defer { names.removeSubrange(outer...) }
            repeat {
                skipSpace()
                let name = try plainString()
                for earlier in names[outer...] where earlier.count == name.count {
                    if bytes[earlier].elementsEqual(bytes[name]) { throw NotPlain() }
                }
                guard names.count - outer < PushScan.maximumMembers else { throw NotPlain() }
                names.append(name)
                skipSpace()
                try expect(UInt8(ascii: ":"))
                skipSpace()
                try read(&self, name)
            } while try !ends(UInt8(ascii: "}"))
        }

        /// Copies the value here as compact JSON (strings and numbers as spelt); with
        /// `spaceIDMember`, an object with a `spaceId` member is not plain.
        mutating func copyValue(into out: inout [UInt8], spaceIDMember: Bool = false, depth: Int = 0) throws {
            guard depth < 512, index < bytes.count else { throw NotPlain() }
            switch bytes[index] {
            case UInt8(ascii: "{"):
                out.append(UInt8(ascii: "{"))
                var first = true
                try members { reader, name in
                    if spaceIDMember, reader.text(name) == "spaceId" { throw NotPlain() }
                    if !first { out.append(UInt8(ascii: ",")) }
                    first = false
                    out.append(contentsOf: reader.quoted(name))
                    out.append(UInt8(ascii: ":"))
                    try reader.copyValue(into: &out, depth: depth + 1)
                }
                out.append(UInt8(ascii: "}"))
            case UInt8(ascii: "["):
                index += 1
                out.append(UInt8(ascii: "["))
                skipSpace()
                if try !closes(UInt8(ascii: "]")) {
                    var first = true
                    repeat {
                        if !first { out.append(UInt8(ascii: ",")) }
                        first = false
                        skipSpace()
                        try copyValue(into: &out, depth: depth + 1)
                    } while try !ends(UInt8(ascii: "]"))
                }
                out.append(UInt8(ascii: "]"))
            case UInt8(ascii: "\""):
                let range = try string()
                out.append(contentsOf: bytes[range.lowerBound - 1...range.upperBound])
            case UInt8(ascii: "t"): try literal("true", into: &out)
            case UInt8(ascii: "f"): try literal("false", into: &out)
            case UInt8(ascii: "n"): try literal("null", into: &out)
            default:
                let start = index
                try number()
                out.append(contentsOf: bytes[start..<index])
            }
        }

        /// Reads past the value here, checking it.
        mutating func skipValue() throws {
            var discarded: [UInt8] = []
            try copyValue(into: &discarded)
        }

        /// A string without escapes, or null (nil); anything else is not plain.
        mutating func optionalPlainString() throws -> String? {
            if null() { return nil }
            return text(try plainString())
        }

        /// A string's contents without escapes.
        mutating func plainString() throws -> Range<Int> {
            let start = index
            let range = try string()
            guard !bytes[range].contains(UInt8(ascii: "\\")) else {
                index = start
                throw NotPlain()
            }
            return range
        }

        /// The plain string here, or nil (for a string with escapes), without moving.
        mutating func peekPlainString() throws -> Range<Int>? {
            let start = index
            defer { index = start }
            let range = try string()
            return bytes[range].contains(UInt8(ascii: "\\")) ? nil : range
        }

        /// A string's contents as written (escapes not decoded; `\u` is not plain).
        mutating func string() throws -> Range<Int> {
            try expect(UInt8(ascii: "\""))
            let start = index
            while index < bytes.count {
                switch bytes[index] {
                case UInt8(ascii: "\""):
                    index += 1
                    return start..<index - 1
                case UInt8(ascii: "\\"):
                    guard index + 1 < bytes.count else { throw NotPlain() }
                    switch bytes[index + 1] {
                    case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"), UInt8(ascii: "b"), UInt8(ascii: "f"),
                        UInt8(ascii: "n"), UInt8(ascii: "r"), UInt8(ascii: "t"):
                        index += 2
                    default: throw NotPlain()
                    }
                case 0..<0x20: throw NotPlain()
                default: index += 1
                }
            }
            throw NotPlain()
        }

        /// RFC 8259's number grammar; one the tree could not hold in a `Double` is not plain.
        mutating func number() throws {
            let start = index
            if at(UInt8(ascii: "-")) { index += 1 }
            guard index < bytes.count, isDigit(bytes[index]) else { throw NotPlain() }
            var digits = 0
            if bytes[index] == UInt8(ascii: "0") {
                index += 1
            } else {
                while index < bytes.count, isDigit(bytes[index]) {
                    digits += 1
                    index += 1
                }
            }
            var simple = digits <= 15
            if at(UInt8(ascii: ".")) {
                simple = false
                index += 1
                guard index < bytes.count, isDigit(bytes[index]) else { throw NotPlain() }
                while index < bytes.count, isDigit(bytes[index]) { index += 1 }
            }
            if at(UInt8(ascii: "e")) || at(UInt8(ascii: "E")) {
                simple = false
                index += 1
                if at(UInt8(ascii: "+")) || at(UInt8(ascii: "-")) { index += 1 }
                guard index < bytes.count, isDigit(bytes[index]) else { throw NotPlain() }
                while index < bytes.count, isDigit(bytes[index]) { index += 1 }
            }
            if !simple {
                guard let value = Double(text(start..<index)), value.isFinite else { throw NotPlain() }
            }
        }

        mutating func literal(_ word: StaticString, into out: inout [UInt8]) throws {
            let count = word.utf8CodeUnitCount
            let spelt = UnsafeBufferPointer(start: word.utf8Start, count: count)
            guard bytes.count - index >= count, bytes[index..<index + count].elementsEqual(spelt) else { throw NotPlain() }
            out.append(contentsOf: spelt)
            index += count
        }

        /// Past a `null` here (true), or not moved (false).
        mutating func null() -> Bool {
            guard bytes.count - index >= 4, bytes[index] == UInt8(ascii: "n"), bytes[index + 1] == UInt8(ascii: "u"),
                bytes[index + 2] == UInt8(ascii: "l"), bytes[index + 3] == UInt8(ascii: "l")
            else { return false }
            index += 4
            return true
        }

        /// After a member or element: true past `closing`, false past a comma with more to come;
        /// a comma before `closing` (which the tree allows) is not plain.
        mutating func ends(_ closing: UInt8) throws -> Bool {
            skipSpace()
            guard index < bytes.count else { throw NotPlain() }
            if bytes[index] == closing {
                index += 1
                return true
            }
            try expect(UInt8(ascii: ","))
            skipSpace()
            if at(closing) { throw NotPlain() }
            return false
        }

        /// Past `closing` when it is here (an empty object or array).
        mutating func closes(_ closing: UInt8) throws -> Bool {
            guard at(closing) else { return false }
            index += 1
            return true
        }

        mutating func expect(_ byte: UInt8) throws {
            guard at(byte) else { throw NotPlain() }
            index += 1
        }

        func at(_ byte: UInt8) -> Bool { index < bytes.count && bytes[index] == byte }

        mutating func skipSpace() {
            while index < bytes.count {
                switch bytes[index] {
                case 0x20, 0x09, 0x0A, 0x0D: index += 1
                default: return
                }
            }
        }

        func isDigit(_ byte: UInt8) -> Bool { byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9") }

        func text(_ range: Range<Int>) -> String { String(decoding: UnsafeBufferPointer(rebasing: bytes[range]), as: UTF8.self) }

        /// A member name as JSON text (its contents have no escapes).
        func quoted(_ range: Range<Int>) -> Slice<UnsafeBufferPointer<UInt8>> { bytes[range.lowerBound - 1..<range.upperBound + 1] }
    }

    /// What one change carried, as ranges of the body and copied text.
    private struct ChangeText {
        var table: Range<Int>?
        var id: Range<Int>?
        var op: Change.Operation?
        var data: [UInt8] = []
        var dataIsObject = false
        /// The normalized `fields` object; valid also when absent or null (then internal only: nothing to store).
        var fields: [UInt8] = []
        var fieldsValid = true
        var onlyInternalFields = true
        var deletedAt: Range<Int>?
        var deletedAtValid = true
        /// `"name":value,…`: the members of the extras object.
        var extras: [UInt8] = []

        mutating func reset() {
            (table, id, op) = (nil, nil, nil)
            data.removeAll(keepingCapacity: true)
            dataIsObject = false
            fields.removeAll(keepingCapacity: true)
            (fieldsValid, onlyInternalFields) = (true, true)
            (deletedAt, deletedAtValid) = (nil, true)
            extras.removeAll(keepingCapacity: true)
        }
    }
}
