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

    @Test func integersAreDecimalAndRowsCopyWhole() {
        var text = CopyText()
        for value: Int64 in [0, 7, 1_714_000_000_123_456, -42, .max, .min] {
            text.appendColumn(ByteBuffer(string: "x"), first: true)
            text.appendColumn(value)
            text.endRow()
        }
        let expected = ["0", "7", "1714000000123456", "-42", "9223372036854775807", "-9223372036854775808"].map { "x\t\($0)\n" }
        #expect(String(buffer: text.buffer) == expected.joined())

        // Rows copied out of order by their byte ranges.
        var reordered = CopyText()
        let ends = expected.reduce(into: [0]) { $0.append($0.last! + $1.utf8.count) }
        for index in [2, 0, 5] { reordered.append(bytesOf: text, from: ends[index], to: ends[index + 1]) }
        #expect(String(buffer: reordered.buffer) == expected[2] + expected[0] + expected[5])
    }
}
