import Foundation

/// Durations as operators write them: `7d`, `12h`, `30m`, `45s`, `250ms`, or a plain number
/// of seconds (`90`, `1.5`). Used by settings and command-line options.
package enum DurationText {
    private static let units: [(suffix: String, seconds: Double)] = [
        ("ms", 0.001), ("d", 86_400), ("h", 3_600), ("m", 60), ("s", 1),
    ]

    /// Nil when the text is not a non-negative number with one of the units above.
    package static func parse(_ text: String) -> Duration? {
        let trimmed = text.trimmingCharacters(in: .whitespaces).lowercased()
        var number = Substring(trimmed)
        var scale = 1.0
        if let unit = units.first(where: { trimmed.hasSuffix($0.suffix) }) {
            number = number.dropLast(unit.suffix.count)
            scale = unit.seconds
        }
        guard !number.isEmpty, number.allSatisfy({ $0.isNumber || $0 == "." }), let value = Double(number), value.isFinite
        else { return nil }
        return .milliseconds(Int64((value * scale * 1000).rounded()))
    }
}
