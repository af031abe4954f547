/// JSON text (RFC 8259) to a ``JSONValue``, in one pass over the bytes.
///
/// Why not `JSONDecoder`: `JSONValue` is a sum type, and Codable can only find out which case
/// a value is by trying each (`Bool`, then `Double`, then `String`, ...), every failed try
/// throwing a `DecodingError`. That cost 17 µs per change of a push (21.8 µs for a body with
/// one change, 1.7 ms with 100) and was 10 % of mana-sync's CPU under one-change pushes
/// (perf, docs/benchmarks.md, session 34). This parser accepts exactly what `JSONDecoder`
/// accepts into a `JSONValue` (`JSONParserTests` compare the two on valid and broken input):
/// any value at the top, nesting at most 512 deep, `\u` escapes with paired surrogates, no
/// control characters in strings, numbers that fit a `Double`; and its leniencies, which
/// clients of the running service may rely on: a comma before `]` or `}`, a leading byte order
/// mark, a repeated key keeping its first value. Input must be UTF-8 (``BodyDecoder`` checks
/// request bodies before).
package enum JSONParser {
    package struct Failure: Error, CustomStringConvertible {
        /// Byte offset of the problem.
        package let offset: Int
        package let reason: String
        package var description: String { "\(reason) at byte \(offset)" }
    }

    /// The deepest nesting of arrays and objects accepted (as `JSONDecoder`'s).
    static let maximumDepth = 512

    package static func parse(_ text: String) throws -> JSONValue {
        var text = text
        return try text.withUTF8 { (bytes: UnsafeBufferPointer<UInt8>) throws -> JSONValue in try parse(bytes) }
    }

    package static func parse(_ bytes: some Collection<UInt8>) throws -> JSONValue {
        if let value = try bytes.withContiguousStorageIfAvailable({ (buffer: UnsafeBufferPointer<UInt8>) throws -> JSONValue in
            try parse(buffer)
        }) {
            return value
        }
        let copy = Array(bytes)
        return try copy.withUnsafeBufferPointer { (buffer: UnsafeBufferPointer<UInt8>) throws -> JSONValue in try parse(buffer) }
    }

    package static func parse(_ bytes: UnsafeBufferPointer<UInt8>) throws -> JSONValue {
        var reader = Reader(bytes: bytes)
        if bytes.count >= 3, bytes[0] == 0xEF, bytes[1] == 0xBB, bytes[2] == 0xBF { reader.index = 3 }
        reader.skipSpace()
        let value = try reader.value(depth: 0)
        reader.skipSpace()
        guard reader.index == bytes.count else { throw reader.failure("unexpected text after the JSON value") }
        return value
    }

    private struct Reader {
        let bytes: UnsafeBufferPointer<UInt8>
        var index = 0
        /// Bytes of a string with escapes, reused across strings.
        var scratch: [UInt8] = []

        init(bytes: UnsafeBufferPointer<UInt8>) {
            self.bytes = bytes
        }

        func failure(_ reason: String) -> Failure { Failure(offset: index, reason: reason) }

        mutating func skipSpace() {
            while index < bytes.count {
                switch bytes[index] {
                case 0x20, 0x09, 0x0A, 0x0D: index += 1
                default: return
                }
            }
        }

        mutating func value(depth: Int) throws -> JSONValue {
            guard index < bytes.count else { throw failure("unexpected end of the JSON text") }
            switch bytes[index] {
            case UInt8(ascii: "{"): return try object(depth: depth + 1)
            case UInt8(ascii: "["): return try array(depth: depth + 1)
            case UInt8(ascii: "\""): return .string(try string())
            case UInt8(ascii: "t"): return try literal("true", .bool(true))
            case UInt8(ascii: "f"): return try literal("false", .bool(false))
            case UInt8(ascii: "n"): return try literal("null", .null)
            case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return .number(try number())
            default: throw failure("unexpected character")
            }
        }

        mutating func literal(_ word: StaticString, _ value: JSONValue) throws -> JSONValue {
            let count = word.utf8CodeUnitCount
            guard bytes.count - index >= count else { throw failure("unexpected end of the JSON text") }
            let start = word.utf8Start
            for offset in 0..<count where bytes[index + offset] != start[offset] {
                throw failure("unexpected character")
            }
            index += count
            return value
        }

        mutating func object(depth: Int) throws -> JSONValue {
            guard depth <= JSONParser.maximumDepth else { throw failure("nested too deeply") }
            index += 1  // {
            var members: [String: JSONValue] = [:]
            skipSpace()
            if index < bytes.count, bytes[index] == UInt8(ascii: "}") {
                index += 1
                return .object(members)
            }
            while true {
                skipSpace()
                guard index < bytes.count, bytes[index] == UInt8(ascii: "\"") else { throw failure("expected a member name") }
                let key = try string()
                skipSpace()
                guard index < bytes.count, bytes[index] == UInt8(ascii: ":") else { throw failure("expected ':'") }
                index += 1
                skipSpace()
                let member = try value(depth: depth)
                if members[key] == nil { members[key] = member }
                if try ends(UInt8(ascii: "}")) { return .object(members) }
            }
        }

        mutating func array(depth: Int) throws -> JSONValue {
            guard depth <= JSONParser.maximumDepth else { throw failure("nested too deeply") }
            index += 1  // [
            var elements: [JSONValue] = []
            skipSpace()
            if index < bytes.count, bytes[index] == UInt8(ascii: "]") {
                index += 1
                return .array(elements)
            }
            while true {
                skipSpace()
                elements.append(try value(depth: depth))
                if try ends(UInt8(ascii: "]")) { return .array(elements) }
            }
        }

        /// After a member or element: true (and past it) at `closing`, also after a trailing
        /// comma (which JSONDecoder allows); false past a comma with more to come.
        mutating func ends(_ closing: UInt8) throws -> Bool {
            skipSpace()
            guard index < bytes.count else { throw failure("unexpected end of the JSON text") }
            switch bytes[index] {
            case UInt8(ascii: ","):
                index += 1
                skipSpace()
                guard index < bytes.count, bytes[index] == closing else { return false }
                index += 1
                return true
            case closing:
                index += 1
                return true
            default:
                throw failure("expected ',' or '\(Character(Unicode.Scalar(closing)))'")
            }
        }

        mutating func string() throws -> String {
            index += 1  // opening quote
            let start = index
            // Fast path: no escapes, the bytes are the string.
            while index < bytes.count {
                let byte = bytes[index]
                if byte == UInt8(ascii: "\"") {
                    let text = String(decoding: UnsafeBufferPointer(rebasing: bytes[start..<index]), as: UTF8.self)
                    index += 1
                    return text
                }
                if byte == UInt8(ascii: "\\") { break }
                guard byte >= 0x20 else { throw failure("unescaped control character in a string") }
                index += 1
            }
            scratch.removeAll(keepingCapacity: true)
            scratch.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[start..<index]))
            while index < bytes.count {
                let byte = bytes[index]
                switch byte {
                case UInt8(ascii: "\""):
                    index += 1
                    return String(decoding: scratch, as: UTF8.self)
                case UInt8(ascii: "\\"):
                    index += 1
                    guard index < bytes.count else { throw failure("unexpected end of the JSON text") }
                    let escaped = bytes[index]
                    index += 1
                    switch escaped {
                    case UInt8(ascii: "\""): scratch.append(0x22)
                    case UInt8(ascii: "\\"): scratch.append(0x5C)
                    case UInt8(ascii: "/"): scratch.append(0x2F)
                    case UInt8(ascii: "b"): scratch.append(0x08)
                    case UInt8(ascii: "f"): scratch.append(0x0C)
                    case UInt8(ascii: "n"): scratch.append(0x0A)
                    case UInt8(ascii: "r"): scratch.append(0x0D)
                    case UInt8(ascii: "t"): scratch.append(0x09)
                    case UInt8(ascii: "u"): try unicodeEscape()
                    default:
                        index -= 1
                        throw failure("invalid escape in a string")
                    }
                default:
                    guard byte >= 0x20 else { throw failure("unescaped control character in a string") }
                    scratch.append(byte)
                    index += 1
                }
            }
            throw failure("unterminated string")
        }

        /// After `\u`: four hex digits, and for a high surrogate the `\uDCxx` that must follow.
        mutating func unicodeEscape() throws {
            var scalar = try hex4()
            if (0xD800...0xDBFF).contains(scalar) {
                guard bytes.count - index >= 6, bytes[index] == UInt8(ascii: "\\"), bytes[index + 1] == UInt8(ascii: "u") else {
                    throw failure("a high surrogate escape without its low surrogate")
                }
                index += 2
                let low = try hex4()
                guard (0xDC00...0xDFFF).contains(low) else { throw failure("a high surrogate escape without its low surrogate") }
                scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
            } else if (0xDC00...0xDFFF).contains(scalar) {
                throw failure("a low surrogate escape without its high surrogate")
            }
            // A valid scalar now (surrogates are paired or refused).
            for unit in Unicode.UTF8.encode(Unicode.Scalar(scalar)!)! { scratch.append(unit) }
        }

        mutating func hex4() throws -> UInt32 {
            guard bytes.count - index >= 4 else { throw failure("unexpected end of the JSON text") }
            var value: UInt32 = 0
            for _ in 0..<4 {
                let byte = bytes[index]
                let digit: UInt8
                switch byte {
                case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = byte - UInt8(ascii: "0")
                case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = byte - UInt8(ascii: "a") + 10
                case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = byte - UInt8(ascii: "A") + 10
                default: throw failure("invalid \\u escape")
                }
                value = value << 4 | UInt32(digit)
                index += 1
            }
            return value
        }

        /// RFC 8259's number grammar; whole numbers of up to 15 digits are converted directly,
        /// others by the standard library's correctly rounded parser.
        mutating func number() throws -> Double {
            let start = index
            var negative = false
            if bytes[index] == UInt8(ascii: "-") {
                negative = true
                index += 1
            }
            guard index < bytes.count, isDigit(bytes[index]) else { throw failure("invalid number") }
            var whole: Int64 = 0
            var digits = 0
            if bytes[index] == UInt8(ascii: "0") {
                index += 1
                digits = 1
            } else {
                while index < bytes.count, isDigit(bytes[index]) {
                    if digits < 18 { whole = whole * 10 + Int64(bytes[index] - UInt8(ascii: "0")) }
                    digits += 1
                    index += 1
                }
            }
            var simple = digits <= 15
            if index < bytes.count, bytes[index] == UInt8(ascii: ".") {
                simple = false
                index += 1
                guard index < bytes.count, isDigit(bytes[index]) else { throw failure("invalid number") }
                while index < bytes.count, isDigit(bytes[index]) { index += 1 }
            }
            if index < bytes.count, bytes[index] == UInt8(ascii: "e") || bytes[index] == UInt8(ascii: "E") {
                simple = false
                index += 1
                if index < bytes.count, bytes[index] == UInt8(ascii: "+") || bytes[index] == UInt8(ascii: "-") { index += 1 }
                guard index < bytes.count, isDigit(bytes[index]) else { throw failure("invalid number") }
                while index < bytes.count, isDigit(bytes[index]) { index += 1 }
            }
            if simple {
                // -0 stays -0.0, as the standard parser gives it.
                return negative ? -Double(whole) : Double(whole)
            }
            let text = String(decoding: UnsafeBufferPointer(rebasing: bytes[start..<index]), as: UTF8.self)
            guard let value = Double(text), value.isFinite else {
                index = start
                throw failure("number does not fit a Double")
            }
            return value
        }

        func isDigit(_ byte: UInt8) -> Bool { byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9") }
    }
}
