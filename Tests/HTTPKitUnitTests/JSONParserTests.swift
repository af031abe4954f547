import Foundation
import Testing

@testable import HTTPKit

/// ``JSONParser`` takes exactly what `JSONDecoder` takes into a `JSONValue`, and gives the
/// same value: both are run on the same texts, valid and broken.
@Suite struct JSONParserTests {
    static func foundation(_ text: String) -> JSONValue? {
        try? JSONDecoder().decode(JSONValue.self, from: Data(text.utf8))
    }

    static func ours(_ text: String) -> JSONValue? {
        try? JSONParser.parse(text)
    }

    static let valid = [
        #"{"clientId":"vu-1","since":"2026-12-02T07:00:00.000Z","changes":[{"table":"items","id":"1","op":"insert","data":{"n":1,"done":false,"x":null}}]}"#,
        "  [1, -2, 3.5, -0.25, 1e3, 1E-3, 2.5e+2, 0, -0, 12345678901234567890, 0.1, 1.7976931348623157e308, 5e-324 ]  ",
        #""a string with \"quotes\", \\ \/ \b\f\n\r\t and \u00e9 \u20AC \ud83d\ude00 😀 ü""#,
        "true", "false", "null", "0", "-1", "\"\"", "[]", "{}", "[[[]]]", #"{"a":{"b":{"c":[1,{"d":[]}]}}}"#,
        #"{"dup":1,"dup":2}"#, " \t\r\n{ \"a\" : [ 1 , 2 ] } \n", #"{"":0}"#, #"["\u0000"]"#,
        // JSONDecoder's leniencies, kept: a trailing comma, a byte order mark.
        "[1,]", "[1 , ]", #"{"a":1,}"#, #"{"a":[{},],}"#, "\u{FEFF}{}",
        String(repeating: "[", count: 512) + String(repeating: "]", count: 512),
    ]

    static let broken = [
        "", " ", "{", "}", "[", "[,1]", "[1,,]", "{,}", "{\"a\"}", "{\"a\":}", "{a:1}", "{'a':1}", "[1 2]", "01", "1.", ".5",
        "-", "+1", "1e", "1e+", "0x10", "tru", "nul", "falsey", "NaN", "Infinity", "1e400", "-1e400", "\"abc", "\"\\x\"", "\"\\u12\"",
        "\"\\uZZZZ\"", "\"\\ud83d\"", "\"\\ud83d\\u0041\"", "\"\\ude00\"", "\"tab\there\"", "\"line\nbreak\"", "[1] x", "{} {}",
        "[\"a\" \"b\"]", "{\"a\" 1}", "{\"a\":1 \"b\":2}", "[1,2", "{\"a\":[1,2}", "\u{FEFF}\u{FEFF}{}",
        String(repeating: "[", count: 513) + String(repeating: "]", count: 513),
    ]

    @Test func validTextGivesTheSameValueAsJSONDecoder() throws {
        for text in Self.valid {
            let expected = try #require(Self.foundation(text), "JSONDecoder refused \(text.prefix(80))")
            #expect(Self.ours(text) == expected, "\(text.prefix(80))")
        }
    }

    @Test func brokenTextIsRefusedLikeJSONDecoderDoes() {
        for text in Self.broken {
            #expect(Self.foundation(text) == nil, "JSONDecoder took \(text.prefix(80))")
            #expect(Self.ours(text) == nil, "took \(text.prefix(80))")
        }
    }

    @Test func aFailureSaysWhereAndWhat() {
        #expect(throws: JSONParser.Failure.self) { try JSONParser.parse(#"{"a": [1, 2,, 3]}"#) }
        do {
            _ = try JSONParser.parse(#"{"a": [1, 2,, 3]}"#)
        } catch let failure as JSONParser.Failure {
            #expect(failure.offset == 12)
            #expect(failure.description == "unexpected character at byte 12")
        } catch {
            Issue.record("unexpected \(error)")
        }
    }

    /// Random documents, written compactly and with random spacing, read back by both.
    @Test func randomDocumentsReadTheSameByBoth() throws {
        var generator = SystemRandomNumberGenerator()
        func randomString() -> String {
            let pieces = ["a", "é", "😀", "\"", "\\", "/", "\n", "\t", "\u{01}", "\u{7F}", "€", " ", "z", "\u{10FFFF}"]
            return (0..<Int.random(in: 0...8, using: &generator)).map { _ in pieces.randomElement(using: &generator)! }.joined()
        }
        func randomValue(_ depth: Int) -> JSONValue {
            switch Int.random(in: 0...(depth > 4 ? 3 : 5), using: &generator) {
            case 0: return .null
            case 1: return .bool(Bool.random(using: &generator))
            case 2:
                let choices: [Double] = [0, -1, 42, 3.25, -1e-7, 1e21, Double(Int.random(in: -1_000_000...1_000_000, using: &generator)),
                                         Double.random(in: -1e6...1e6, using: &generator)]
                return .number(choices.randomElement(using: &generator)!)
            case 3: return .string(randomString())
            case 4: return .array((0..<Int.random(in: 0...4, using: &generator)).map { _ in randomValue(depth + 1) })
            default:
                var members: [String: JSONValue] = [:]
                for _ in 0..<Int.random(in: 0...4, using: &generator) { members[randomString()] = randomValue(depth + 1) }
                return .object(members)
            }
        }
        for _ in 0..<500 {
            let value = randomValue(0)
            let compact = String(decoding: try JSONEncoder().encode(value), as: UTF8.self)
            let spaced = String(decoding: try JSONEncoder.pretty.encode(value), as: UTF8.self)
            for text in [compact, spaced] {
                let expected = try #require(Self.foundation(text))
                #expect(Self.ours(text) == expected, "\(text)")
            }
        }
    }
}

extension JSONEncoder {
    fileprivate static var pretty: JSONEncoder {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .withoutEscapingSlashes]
        return encoder
    }
}
