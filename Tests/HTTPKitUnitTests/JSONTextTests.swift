import Foundation
import HTTPKit
import Testing

/// The hand-written JSON writer against Foundation's reader: whatever it writes reads back
/// as the same value.
@Suite struct JSONTextTests {
    typealias Generator = SplitMix64

    static let awkwardStrings = [
        "", "plain", "quote \" and backslash \\", "line\nbreak\ttab\rreturn", "\u{0}\u{1}\u{1F}", "ümlaut ✓ 🚀", "/slash/",
        "\u{7F}\u{80}\u{FFFF}", "{\"json\":[1]}",
    ]

    static func value(_ random: inout Generator, depth: Int) -> JSONValue {
        switch Int.random(in: 0..<(depth > 3 ? 4 : 6), using: &random) {
        case 0: return .null
        case 1: return .bool(Bool.random(using: &random))
        case 2:
            let choices: [Double] = [
                0, -0.0, 1, -1, 30, 0.1, -2.5, 1e15, 1e21, 123_456_789_012, 9_007_199_254_740_991, 1.0e-7, Double.random(in: -1e6...1e6, using: &random),
            ]
            return .number(choices.randomElement(using: &random)!)
        case 3: return .string(awkwardStrings.randomElement(using: &random)!)
        case 4: return .array((0..<Int.random(in: 0..<4, using: &random)).map { _ in value(&random, depth: depth + 1) })
        default:
            var members: [String: JSONValue] = [:]
            for _ in 0..<Int.random(in: 0..<4, using: &random) {
                members[awkwardStrings.randomElement(using: &random)!] = value(&random, depth: depth + 1)
            }
            return .object(members)
        }
    }

    @Test func whatItWritesReadsBackAsTheSameValue() throws {
        var random = Generator(seed: 2026_12_01)
        for _ in 0..<2_000 {
            let value = Self.value(&random, depth: 0)
            var out: [UInt8] = []
            JSONText.append(value, to: &out)
            let read = try JSONDecoder().decode(JSONValue.self, from: Data(out))
            #expect(read == value, "\(String(decoding: out, as: UTF8.self))")
        }
    }

    @Test func wholeNumbersHaveNoFraction() {
        for (number, text) in [(30.0, "30"), (-1.0, "-1"), (0.5, "0.5"), (-0.0, "0"), (1e15, "1000000000000000"), (1e21, "1e+21")] {
            var out: [UInt8] = []
            JSONText.appendNumber(number, to: &out)
            #expect(String(decoding: out, as: UTF8.self) == text)
        }
    }

    /// `sorted` writes what `JSONEncoder.sortedKeys` writes, for the values it is used for
    /// (strings, whole numbers below 2^53, booleans, null, arrays and objects of them).
    @Test func sortedWritesWhatTheSortedKeysEncoderWrites() throws {
        var random = Generator(seed: 2026_12_02)
        func wholeNumbersOnly(_ value: JSONValue) -> JSONValue {
            switch value {
            case .number(let number): .number(number.rounded().truncatingRemainder(dividingBy: 1e12))
            case .array(let items): .array(items.map(wholeNumbersOnly))
            case .object(let members): .object(members.mapValues(wholeNumbersOnly))
            default: value
            }
        }
        for _ in 0..<2_000 {
            let value = wholeNumbersOnly(Self.value(&random, depth: 0))
            let expected = String(decoding: try JSONEncoder.sortedKeys.encode(value), as: UTF8.self)
            #expect(JSONText.sorted(value) == expected)
        }
    }
}
