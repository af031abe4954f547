import Foundation
import Testing

@testable import SharedAuth

/// The token after `Bearer ` loses the spaces Foundation's `.whitespaces` names, no more.
@Suite struct BearerTrimTests {
    @Test func trimsWhatTrimmingCharactersTrims() {
        let samples = [
            "abc.def.ghi", "  abc.def.ghi", "abc.def.ghi\t", " \t abc def \t ", "\u{00A0}tok\u{2003}", "\u{3000}\u{202F}x\u{205F}",
            "", "   ", "\t", "tok\n", "\ntok", "a\u{00A0}b", "é ", " 😀 ", "\u{200B}tok",
        ]
        for sample in samples {
            let expected = sample.trimmingCharacters(in: .whitespaces)
            #expect(BearerHeader.trimmingSpaces(Substring(sample)) == expected, "\(sample.debugDescription)")
        }
    }
}
