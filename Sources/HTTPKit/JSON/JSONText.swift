import NIOCore
import PostgresNIO

/// JSON text building for hot paths: straight into bytes, without `JSONEncoder`'s
/// intermediate tree and without a `Data` and a `String` copy of the result (a push of
/// 4,000 changes used to hold all three at once).
package enum JSONText {
    /// Appends `text` as a JSON string literal (quotes, backslashes and control characters escaped).
    package static func appendString(_ text: String, to out: inout [UInt8]) {
        out.append(UInt8(ascii: "\""))
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "\""): out.append(contentsOf: #"\""#.utf8)
            case UInt8(ascii: "\\"): out.append(contentsOf: #"\\"#.utf8)
            case 0x0A: out.append(contentsOf: #"\n"#.utf8)
            case 0x0D: out.append(contentsOf: #"\r"#.utf8)
            case 0x09: out.append(contentsOf: #"\t"#.utf8)
            case 0..<0x20:
                out.append(contentsOf: #"\u00"#.utf8)
                out.append(hexDigits[Int(byte >> 4)])
                out.append(hexDigits[Int(byte & 0x0F)])
            default: out.append(byte)
            }
        }
        out.append(UInt8(ascii: "\""))
    }

    private static let hexDigits = Array("0123456789abcdef".utf8)

    /// Appends a number as `JSONValue`'s `Encodable` writes it: whole numbers without `.0`.
    package static func appendNumber(_ number: Double, to out: inout [UInt8]) {
        if let whole = JSONValue.wholeNumber(number) {
            out.append(contentsOf: String(whole).utf8)
        } else {
            out.append(contentsOf: number.description.utf8)
        }
    }

    /// Appends `value` as compact JSON text (objects' keys in order with `sortingKeys`).
    package static func append(_ value: JSONValue, to out: inout [UInt8], sortingKeys: Bool = false) {
        switch value {
        case .null: out.append(contentsOf: "null".utf8)
        case .bool(let flag): out.append(contentsOf: (flag ? "true" : "false").utf8)
        case .number(let number): appendNumber(number, to: &out)
        case .string(let text): appendString(text, to: &out)
        case .array(let items):
            out.append(UInt8(ascii: "["))
            for (index, item) in items.enumerated() {
                if index > 0 { out.append(UInt8(ascii: ",")) }
                append(item, to: &out, sortingKeys: sortingKeys)
            }
            out.append(UInt8(ascii: "]"))
        case .object(let members) where sortingKeys:
            out.append(UInt8(ascii: "{"))
            for (index, name) in members.keys.sorted().enumerated() {
                if index > 0 { out.append(UInt8(ascii: ",")) }
                appendString(name, to: &out)
                out.append(UInt8(ascii: ":"))
                append(members[name]!, to: &out, sortingKeys: true)
            }
            out.append(UInt8(ascii: "}"))
        case .object(let members):
            out.append(UInt8(ascii: "{"))
            appendMembers(members, to: &out)
            out.append(UInt8(ascii: "}"))
        }
    }

    /// Compact JSON text of `value` with every object's keys in order: what
    /// `JSONEncoder.sortedKeys` writes, for small messages on hot paths (push notices,
    /// `sync-available`), without the encoder's cost (4 % of mana-sync's CPU under pushes).
    package static func sorted(_ value: JSONValue) -> String {
        var out: [UInt8] = []
        out.reserveCapacity(128)
        append(value, to: &out, sortingKeys: true)
        return String(decoding: out, as: UTF8.self)
    }

    /// Appends `"name":value` pairs separated by commas (no braces), for splicing into an object.
    package static func appendMembers(_ members: [String: JSONValue], to out: inout [UInt8]) {
        var first = true
        for (name, member) in members {
            if !first { out.append(UInt8(ascii: ",")) }
            first = false
            appendString(name, to: &out)
            out.append(UInt8(ascii: ":"))
            append(member, to: &out)
        }
    }
}

/// JSON text bound as a `text` query parameter (cast with `::jsonb` in the SQL), written into
/// the bind message as it is.
package struct JSONTextParameter: PostgresNonThrowingEncodable {
    package let bytes: [UInt8]

    package init(_ bytes: [UInt8]) {
        self.bytes = bytes
    }

    package static var psqlType: PostgresDataType { .text }
    package static var psqlFormat: PostgresFormat { .binary }

    package func encode<JSONEncoder: PostgresJSONEncoder>(into byteBuffer: inout ByteBuffer, context: PostgresEncodingContext<JSONEncoder>) {
        byteBuffer.writeBytes(bytes)
    }
}
