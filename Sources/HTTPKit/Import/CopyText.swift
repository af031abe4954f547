import Logging
import NIOCore
import PostgresNIO

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
            if !column.utf8.contains(where: Self.needsEscape) {
                buffer.writeString(column)
                continue
            }
            writeEscaped(column.utf8)
        }
        buffer.writeInteger(UInt8(ascii: "\n"))
    }

    /// Appends one column of the current row from raw UTF-8 bytes (nil is SQL NULL), escaped
    /// like ``append(_:)``; a tab goes before every column but the first. End the row with
    /// ``endRow()``. For rows read as text from another database without making Strings.
    package mutating func appendColumn(_ bytes: ByteBuffer?, first: Bool) {
        guard let bytes else {
            if first { buffer.writeStaticString("\\N") } else { buffer.writeStaticString("\t\\N") }
            return
        }
        bytes.withUnsafeReadableBytes { source in
            if source.contains(where: Self.needsEscape) {
                if !first { buffer.writeInteger(UInt8(ascii: "\t")) }
                writeEscaped(source)
                return
            }
            // The common case in one write: the tab and the bytes as they are.
            buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: source.count + 1) { target in
                var offset = 0
                if !first {
                    target[0] = UInt8(ascii: "\t")
                    offset = 1
                }
                if let base = source.baseAddress, source.count > 0 {
                    target.baseAddress!.advanced(by: offset).copyMemory(from: base, byteCount: source.count)
                }
                return offset + source.count
            }
        }
    }

    /// Appends an integer column of the current row (never the first) in decimal, without
    /// making a String.
    package mutating func appendColumn(_ value: Int64) {
        buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: 21) { target in
            // Digits from the right end of the 21 bytes, then moved left behind the tab and sign.
            var magnitude = value.magnitude
            var start = 21
            repeat {
                start -= 1
                target[start] = UInt8(ascii: "0") + UInt8(magnitude % 10)
                magnitude /= 10
            } while magnitude > 0
            var length = 0
            target[length] = UInt8(ascii: "\t")
            length += 1
            if value < 0 {
                target[length] = UInt8(ascii: "-")
                length += 1
            }
            for index in start..<21 {
                target[length] = target[index]
                length += 1
            }
            return length
        }
    }

    /// Appends bytes `start ..< end` of `other` (whole rows: already escaped and ended).
    package mutating func append(bytesOf other: CopyText, from start: Int, to end: Int) {
        other.buffer.withUnsafeReadableBytes { buffer.writeBytes(UnsafeRawBufferPointer(rebasing: $0[start..<end])) }
    }

    /// Backslash, tab, newline and carriage return: the bytes COPY text escapes.
    private static func needsEscape(_ byte: UInt8) -> Bool {
        byte == 0x5C || byte == 0x09 || byte == 0x0A || byte == 0x0D
    }

    /// Writes `bytes` with COPY text's escapes (``needsEscape(_:)``).
    private mutating func writeEscaped(_ bytes: some Sequence<UInt8>) {
        for byte in bytes {
            switch byte {
            case 0x5C: buffer.writeStaticString("\\\\")
            case 0x09: buffer.writeStaticString("\\t")
            case 0x0A: buffer.writeStaticString("\\n")
            case 0x0D: buffer.writeStaticString("\\r")
            default: buffer.writeInteger(byte)
            }
        }
    }

    /// Ends the row begun with ``appendColumn(_:first:)``.
    package mutating func endRow() {
        buffer.writeInteger(UInt8(ascii: "\n"))
    }

    /// Bytes written so far.
    package var byteCount: Int { buffer.readableBytes }

    package var isEmpty: Bool { buffer.readableBytes == 0 }

    package mutating func removeAll() { buffer.clear() }
}

extension PostgresConnection {
    /// COPY `text` into `schema.table`. PostgresNIO's `copyFrom(table:)` quotes the name it is
    /// given as one identifier (`COPY "name"`), so a schema-qualified name is passed as
    /// `schema"."table` to come out as `"schema"."table"`.
    package func copy(_ text: CopyText, into schema: String, _ table: String, columns: [String], logger: Logger) async throws {
        guard !text.isEmpty else { return }
        let buffer = text.buffer
        try await copyFrom(table: "\(schema)\".\"\(table)", columns: columns, logger: logger) { try await $0.write(buffer) }
    }
}
