import NIOCore
import PostgresNIO

/// A `text[]` query parameter written straight into PostgreSQL's binary array format, element by
/// element, without a `String` per element: for columns of many rows sent as parallel arrays
/// (mana-sync's `sync.push_rows`), where PostgresNIO's `[String]` would allocate a string for
/// each value and copy it again into the bind message.
///
/// ```swift
/// var ids = TextArrayParameter()
/// ids.append("a")
/// ids.append { JSONText.append(value, to: &$0) }   // an element written in place
/// bindings.append(ids)                              // $1::text[]
/// ```
///
/// Elements are never NULL; a caller that needs an absent value sends `''` and maps it back
/// with `nullif` in SQL.
package struct TextArrayParameter: PostgresNonThrowingEncodable, Sendable {
    /// The elements as the array's binary body holds them: each a 4-byte big-endian length,
    /// then its UTF-8 bytes.
    package private(set) var body: [UInt8] = []
    package private(set) var count = 0

    package init() {}

    /// The bytes of the elements alone (without their length words).
    package var textBytes: Int { body.count - 4 * count }

    /// Appends an element written by `write` (which must write UTF-8 text).
    package mutating func append(_ write: (inout [UInt8]) -> Void) {
        let start = body.count
        for _ in 0..<4 { body.append(0) }
        write(&body)
        let length = UInt32(body.count - start - 4)
        body[start] = UInt8(truncatingIfNeeded: length >> 24)
        body[start + 1] = UInt8(truncatingIfNeeded: length >> 16)
        body[start + 2] = UInt8(truncatingIfNeeded: length >> 8)
        body[start + 3] = UInt8(truncatingIfNeeded: length)
        count += 1
    }

    /// Appends `text` as an element.
    package mutating func append(_ text: String) {
        append { $0.append(contentsOf: text.utf8) }
    }

    /// Appends every element of `other`, after this one's.
    package mutating func append(contentsOf other: TextArrayParameter) {
        body.append(contentsOf: other.body)
        count += other.count
    }

    /// Reserves room for `bytes` more bytes of elements (their length words included).
    package mutating func reserveCapacity(_ bytes: Int) {
        body.reserveCapacity(bytes)
    }

    package static var psqlType: PostgresDataType { .textArray }
    package static var psqlFormat: PostgresFormat { .binary }

    package func encode<JSONEncoder: PostgresJSONEncoder>(into byteBuffer: inout ByteBuffer, context: PostgresEncodingContext<JSONEncoder>) {
        // array_recv's layout: dimensions, a has-nulls flag, the element type; per dimension its
        // length and lower bound; then the elements. An empty array has no dimension.
        byteBuffer.writeInteger(Int32(count == 0 ? 0 : 1))
        byteBuffer.writeInteger(Int32(0))
        byteBuffer.writeInteger(PostgresDataType.text.rawValue)
        guard count > 0 else { return }
        byteBuffer.writeInteger(Int32(count))
        byteBuffer.writeInteger(Int32(1))
        byteBuffer.writeBytes(body)
    }
}
