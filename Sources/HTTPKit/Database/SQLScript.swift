import Foundation

/// Splits a SQL script into single statements.
///
/// PostgresNIO speaks only the extended query protocol, which takes one statement at a
/// time, so migration files are split here. Semicolons inside quotes, quoted identifiers,
/// dollar-quoted bodies (`$$ ... $$`, `$fn$ ... $fn$`) and comments do not split.
package enum SQLScript {
    package static func statements(_ script: String) -> [String] {
        let chars = Array(script.unicodeScalars)
        var statements: [String] = []
        var current = String.UnicodeScalarView()
        var index = 0

        func flush() {
            let text = String(current).trimmingCharacters(in: .whitespacesAndNewlines)
            if !text.isEmpty, !isOnlyComments(text) { statements.append(text) }
            current = String.UnicodeScalarView()
        }
        func copy(until endIndex: Int) {
            let end = min(endIndex, chars.count)
            current.append(contentsOf: chars[index..<end])
            index = end
        }
        func find(_ needle: [Unicode.Scalar], from start: Int) -> Int? {
            guard !needle.isEmpty, chars.count >= needle.count else { return nil }
            var position = start
            while position <= chars.count - needle.count {
                if Array(chars[position..<position + needle.count]) == needle { return position }
                position += 1
            }
            return nil
        }

        while index < chars.count {
            let char = chars[index]
            let next: Unicode.Scalar? = index + 1 < chars.count ? chars[index + 1] : nil
            switch char {
            case "'", "\"":
                // Quoted literal or identifier; a doubled quote is an escaped quote.
                var end = index + 1
                while end < chars.count {
                    if chars[end] == char {
                        if end + 1 < chars.count, chars[end + 1] == char { end += 2; continue }
                        break
                    }
                    end += 1
                }
                copy(until: end + 1)
            case "-" where next == "-":
                var end = index
                while end < chars.count, chars[end] != "\n" { end += 1 }
                copy(until: end)
            case "/" where next == "*":
                copy(until: (find(["*", "/"], from: index + 2) ?? chars.count) + 2)
            case "$":
                // Dollar quote: $tag$ ... $tag$, where tag is empty or an identifier.
                var end = index + 1
                while end < chars.count, chars[end] == "_" || chars[end].properties.isAlphabetic
                    || (end > index + 1 && ("0"..."9").contains(chars[end]))
                {
                    end += 1
                }
                if end < chars.count, chars[end] == "$" {
                    let tag = Array(chars[index...end])
                    let close = find(tag, from: end + 1) ?? chars.count
                    copy(until: close + tag.count)
                } else {
                    copy(until: index + 1)
                }
            case ";":
                index += 1
                flush()
            default:
                current.append(char)
                index += 1
            }
        }
        flush()
        return statements
    }

    private static func isOnlyComments(_ text: String) -> Bool {
        text.split(separator: "\n").allSatisfy { $0.trimmingCharacters(in: .whitespaces).hasPrefix("--") || $0.trimmingCharacters(in: .whitespaces).isEmpty }
    }
}
