import Foundation
import HTTPKit
import Testing

@Suite struct TimestampTests {
    @Test func formatsWithSixFractionalDigits() {
        #expect(Timestamp.format(microseconds: 0) == "1970-01-01T00:00:00.000000Z")
        #expect(Timestamp.format(microseconds: 1_775_852_937_123_456) == "2026-04-10T20:28:57.123456Z")
        #expect(Timestamp.format(microseconds: -1) == "1969-12-31T23:59:59.999999Z")
        #expect(Timestamp.format(microseconds: 951_782_400_000_000) == "2000-02-29T00:00:00.000000Z")
    }

    @Test(arguments: [
        ("2026-04-10T20:28:57.123456Z", 1_775_852_937_123_456 as Int64),
        ("2026-04-10T20:28:57Z", 1_775_852_937_000_000),
        ("2026-04-10T20:28:57.1Z", 1_775_852_937_100_000),
        ("2026-04-10T20:28:57.123456789Z", 1_775_852_937_123_456),
        ("2026-04-10T22:28:57.123+02:00", 1_775_852_937_123_000),
        ("2026-04-10T18:28:57-02:00", 1_775_852_937_000_000),
        ("2026-04-10t20:28:57z", 1_775_852_937_000_000),
        ("1970-01-01T00:00:00.000Z", 0),
    ])
    func parsesRFC3339(text: String, micros: Int64) {
        #expect(Timestamp.parseMicroseconds(text) == micros)
    }

    @Test(arguments: [
        "", "yesterday", "2026-04-10", "2026-04-10T20:28:57", "2026-13-01T00:00:00Z", "2026-02-30T00:00:00Z",
        "2026-04-10T24:00:00Z", "2026-04-10T20:28:57.Z", "2026-04-10T20:28:57+2", "2026-04-10T20:28:57Zjunk",
        "1712780937",
    ])
    func rejectsWhatIsNotRFC3339(text: String) {
        #expect(Timestamp.parseMicroseconds(text) == nil)
    }

    /// The digits written by hand agree with Foundation's formatter (seconds) and with the
    /// fraction's own digits, for random instants from 1900 to 2200 and every precision.
    @Test func formatAgreesWithFoundation() {
        let formatter = ISO8601DateFormatter()
        formatter.timeZone = TimeZone(identifier: "UTC")
        var random = SystemRandomNumberGenerator()
        for _ in 0..<2_000 {
            let micros = Int64.random(in: -2_208_988_800_000_000...7_258_118_400_000_000, using: &random)
            let seconds = micros >= 0 ? micros / 1_000_000 : (micros - 999_999) / 1_000_000
            let fractionValue = micros - seconds * 1_000_000
            let fractionText = String(fractionValue)
            let fraction = String(repeating: "0", count: 6 - fractionText.count) + fractionText
            let whole = formatter.string(from: Date(timeIntervalSince1970: TimeInterval(seconds))).dropLast()  // no "Z"
            for digits in 0...6 {
                let shown = digits > 0 ? "." + fraction.prefix(digits) : ""
                let expected = String(whole) + shown + "Z"
                #expect(Timestamp.format(microseconds: micros, fractionDigits: digits) == expected)
            }
        }
    }

    @Test func roundTripsAcrossCenturies() {
        for micros: Int64 in [0, 1, 999_999, 86_400_000_000, 4_102_444_800_000_001, -2_208_988_800_000_000] {
            #expect(Timestamp.parseMicroseconds(Timestamp.format(microseconds: micros)) == micros)
        }
    }
}

@Suite struct SQLScriptTests {
    @Test func splitsOnSemicolonsOutsideQuotesAndComments() {
        let script = """
            -- a comment; not a statement
            CREATE TABLE a (x text DEFAULT 'semi;colon');
            /* block; comment */
            CREATE FUNCTION f() RETURNS trigger AS $$ BEGIN RAISE 'x;y'; RETURN NEW; END $$ LANGUAGE plpgsql;
            CREATE FUNCTION g() RETURNS int AS $body$ SELECT 1; $body$ LANGUAGE sql;
            SELECT "odd;name" FROM a
            """
        let statements = SQLScript.statements(script)
        #expect(statements.count == 4)
        #expect(statements[0].hasSuffix("DEFAULT 'semi;colon')"))
        #expect(statements[1].contains("RETURN NEW; END $$"))
        #expect(statements[2].contains("SELECT 1; $body$"))
        #expect(statements[3] == "SELECT \"odd;name\" FROM a")
    }

    @Test func emptyAndCommentOnlyScriptsHaveNoStatements() {
        #expect(SQLScript.statements("").isEmpty)
        #expect(SQLScript.statements("-- nothing here\n;\n  ;").isEmpty)
    }
}
