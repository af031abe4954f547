import NIOCore

/// Rows in PostgreSQL's COPY text format, for `PostgresConnection.copyFrom`: columns
/// separated by tabs, `\N` for NULL, backslash, tab, newline and carriage return escaped.
///
/// ```swift
/// var rows = CopyText()
/// rows.append(["a\tb", nil, "42"])   // a\tb	\N	42
/// ```
package struct CopyText: Sendable {
    package private(set) var buffer: ByteBuffer

    package init(capacity: Int = 1 << 20) {
        buffer = ByteBufferAllocator().buffer(capacity: capacity)
    }

    /// Appends one row; nil is SQL NULL.
    package mutating func append(_ columns: [String?]) {
        for (index, column) in columns.enumerated() {
            if index > 0 { buffer.writeInteger(UInt8(ascii: "\t")) }
            guard let column else {
                buffer.writeStaticString("\\N")
                continue
            }
            var plain = true
            for byte in column.utf8 where byte == 0x5C || byte == 0x09 || byte == 0x0A || byte == 0x0D {
                plain = false
                break
            }
            if plain {
                buffer.writeString(column)
                continue
            }
            for byte in column.utf8 {
                switch byte {
                case 0x5C: buffer.writeStaticString("\\\\")
                case 0x09: buffer.writeStaticString("\\t")
                case 0x0A: buffer.writeStaticString("\\n")
                case 0x0D: buffer.writeStaticString("\\r")
                default: buffer.writeInteger(byte)
                }
            }
        }
        buffer.writeInteger(UInt8(ascii: "\n"))
    }

    package var isEmpty: Bool { buffer.readableBytes == 0 }

    package mutating func removeAll() { buffer.clear() }
}
