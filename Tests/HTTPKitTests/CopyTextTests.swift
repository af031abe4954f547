import NIOCore
import Testing

import HTTPKit

/// COPY text built from Strings and from raw bytes is the same text.
@Suite struct CopyTextTests {
    static let rows: [[String?]] = [
        ["plain", nil, "42"],
        ["tab\there", "new\nline", "back\\slash", "cr\rx", ""],
        ["ünïcødé 🎉", "{\"a\": \"b\\\\c\"}", nil],
    ]

    @Test func rawColumnsEscapeLikeStrings() {
        var strings = CopyText()
        var raw = CopyText()
        for row in Self.rows {
            strings.append(row)
            for (index, column) in row.enumerated() {
                raw.appendColumn(column.map { ByteBuffer(string: $0) }, first: index == 0)
            }
            raw.endRow()
        }
        #expect(raw.buffer == strings.buffer)
        #expect(raw.byteCount == strings.buffer.readableBytes)
        let text = String(buffer: raw.buffer)
        #expect(text.hasPrefix("plain\t\\N\t42\ntab\\there\tnew\\nline\tback\\\\slash\tcr\\rx\t\nünïcødé 🎉\t"))
    }
}
