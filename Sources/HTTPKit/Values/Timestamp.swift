import Foundation

/// RFC 3339 timestamps, formatted and parsed without losing microseconds.
///
/// Foundation's ISO 8601 formatter keeps only milliseconds; sync cursors need six
/// fractional digits, so both services use this instead.
/// ```swift
/// Timestamp.format(microseconds: 0)                 // "1970-01-01T00:00:00.000000Z"
/// Timestamp.parseMicroseconds("2024-01-01T10:00:00+02:00")
/// ```
package enum Timestamp {
    /// `2026-04-10T20:28:57.123Z`: UTC with milliseconds, for API responses.
    package static func iso8601(_ date: Date) -> String {
        let micros = Int64((date.timeIntervalSince1970 * 1_000_000).rounded(.down))
        return format(microseconds: micros, fractionDigits: 3)
    }

    /// The wall clock in microseconds since the Unix epoch.
    package static func nowMicroseconds() -> Int64 {
        Int64((Date().timeIntervalSince1970 * 1_000_000).rounded(.down))
    }

    /// UTC with `fractionDigits` (0–6) fractional digits and a `Z`.
    package static func format(microseconds: Int64, fractionDigits: Int = 6) -> String {
        let seconds = floorDiv(microseconds, 1_000_000)
        let micros = microseconds - seconds * 1_000_000
        let days = floorDiv(seconds, 86_400)
        let secondOfDay = seconds - days * 86_400
        let (year, month, day) = civil(fromDays: days)
        if (0...9999).contains(year) {
            // Digits written directly: `String(format:)` was 3 % of mana-credits' CPU under debits.
            var out = [UInt8](repeating: UInt8(ascii: "0"), count: 20 + (fractionDigits > 0 ? 1 + min(fractionDigits, 6) : 0))
            func put(_ value: Int64, at end: Int, width: Int) {
                var value = value
                for position in stride(from: end - 1, through: end - width, by: -1) {
                    out[position] = UInt8(ascii: "0") + UInt8(value % 10)
                    value /= 10
                }
            }
            put(Int64(year), at: 4, width: 4)
            out[4] = UInt8(ascii: "-")
            put(Int64(month), at: 7, width: 2)
            out[7] = UInt8(ascii: "-")
            put(Int64(day), at: 10, width: 2)
            out[10] = UInt8(ascii: "T")
            put(secondOfDay / 3600, at: 13, width: 2)
            out[13] = UInt8(ascii: ":")
            put((secondOfDay % 3600) / 60, at: 16, width: 2)
            out[16] = UInt8(ascii: ":")
            put(secondOfDay % 60, at: 19, width: 2)
            if fractionDigits > 0 {
                let shown = min(fractionDigits, 6)
                out[19] = UInt8(ascii: ".")
                var fraction = micros
                for _ in shown..<6 { fraction /= 10 }
                put(fraction, at: 20 + shown, width: shown)
            }
            out[out.count - 1] = UInt8(ascii: "Z")
            return String(decoding: out, as: UTF8.self)
        }
        var text = String(format: "%04lld-%02d-%02dT%02lld:%02lld:%02lld",
                          year, month, day, secondOfDay / 3600, (secondOfDay % 3600) / 60, secondOfDay % 60)
        if fractionDigits > 0 {
            let digits = String(format: "%06lld", micros).prefix(min(fractionDigits, 6))
            text += "." + digits
        }
        return text + "Z"
    }

    /// Parses any RFC 3339 timestamp: any number of fractional digits, `Z` or an offset.
    /// Returns microseconds since the Unix epoch (digits past the sixth are truncated),
    /// or nil when the text is not RFC 3339.
    package static func parseMicroseconds(_ text: String) -> Int64? {
        var text = text
        return text.withUTF8 { parseMicroseconds(utf8: $0) }
    }

    /// ``parseMicroseconds(_:)`` of UTF-8 bytes, read in place.
    package static func parseMicroseconds(utf8 bytes: UnsafeBufferPointer<UInt8>) -> Int64? {
        var index = 0
        func number(_ count: Int) -> Int64? {
            guard index + count <= bytes.count else { return nil }
            var value: Int64 = 0
            for byte in bytes[index..<index + count] {
                guard byte >= 48, byte <= 57 else { return nil }
                value = value * 10 + Int64(byte - 48)
            }
            index += count
            return value
        }
        func expect(_ first: UInt8, _ second: UInt8? = nil, _ third: UInt8? = nil) -> Bool {
            guard index < bytes.count, bytes[index] == first || bytes[index] == second || bytes[index] == third else { return false }
            index += 1
            return true
        }
        guard let year = number(4), expect(45), let month = number(2), expect(45), let day = number(2),
            expect(84, 116, 32),  // T, t or a space
            let hour = number(2), expect(58), let minute = number(2), expect(58), let second = number(2)
        else { return nil }
        guard (1...12).contains(month), day >= 1, day <= daysIn(month: month, year: year),
            hour <= 23, minute <= 59, second <= 60
        else { return nil }
        var micros: Int64 = 0
        if index < bytes.count, bytes[index] == 46 {  // '.'
            index += 1
            var digits = 0
            while index < bytes.count, bytes[index] >= 48, bytes[index] <= 57 {
                if digits < 6 { micros = micros * 10 + Int64(bytes[index] - 48) }
                digits += 1
                index += 1
            }
            guard digits > 0 else { return nil }
            if digits < 6 { for _ in digits..<6 { micros *= 10 } }
        }
        var offsetSeconds: Int64 = 0
        if expect(90, 122) {  // Z or z
        } else if index < bytes.count, bytes[index] == 43 || bytes[index] == 45 {
            let sign: Int64 = bytes[index] == 45 ? -1 : 1
            index += 1
            guard let offsetHours = number(2), expect(58), let offsetMinutes = number(2),
                offsetHours <= 23, offsetMinutes <= 59
            else { return nil }
            offsetSeconds = sign * (offsetHours * 3600 + offsetMinutes * 60)
        } else {
            return nil
        }
        guard index == bytes.count else { return nil }
        let days = days(fromCivil: year, month: month, day: day)
        let seconds = days * 86_400 + hour * 3600 + minute * 60 + min(second, 59) - offsetSeconds
        return seconds * 1_000_000 + micros
    }

    /// Parses an RFC 3339 timestamp into a `Date`.
    package static func parseDate(_ text: String) -> Date? {
        parseMicroseconds(text).map { Date(timeIntervalSince1970: Double($0) / 1_000_000) }
    }

    // MARK: Calendar arithmetic (proleptic Gregorian, days since 1970-01-01)

    private static func floorDiv(_ value: Int64, _ divisor: Int64) -> Int64 {
        value >= 0 ? value / divisor : -((-value + divisor - 1) / divisor)
    }

    private static func isLeap(_ year: Int64) -> Bool {
        (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
    }

    private static func daysIn(month: Int64, year: Int64) -> Int64 {
        switch month {
        case 2: isLeap(year) ? 29 : 28
        case 4, 6, 9, 11: 30
        default: 31
        }
    }

    private static func days(fromCivil year: Int64, month: Int64, day: Int64) -> Int64 {
        let y = month <= 2 ? year - 1 : year
        let era = floorDiv(y, 400)
        let yearOfEra = y - era * 400
        let monthIndex = month > 2 ? month - 3 : month + 9
        let dayOfYear = (153 * monthIndex + 2) / 5 + day - 1
        let dayOfEra = yearOfEra * 365 + yearOfEra / 4 - yearOfEra / 100 + dayOfYear
        return era * 146_097 + dayOfEra - 719_468
    }

    private static func civil(fromDays days: Int64) -> (Int64, Int32, Int32) {
        let z = days + 719_468
        let era = floorDiv(z, 146_097)
        let dayOfEra = z - era * 146_097
        let yearOfEra = (dayOfEra - dayOfEra / 1460 + dayOfEra / 36524 - dayOfEra / 146_096) / 365
        let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)
        let monthIndex = (5 * dayOfYear + 2) / 153
        let day = dayOfYear - (153 * monthIndex + 2) / 5 + 1
        let month = monthIndex < 10 ? monthIndex + 3 : monthIndex - 9
        let year = yearOfEra + era * 400 + (month <= 2 ? 1 : 0)
        return (year, Int32(month), Int32(day))
    }
}
