import Foundation
import HTTPKit
import Testing

@testable import ManaCredits

/// A debit's answer built by hand is byte for byte what `JSONEncoder.sortedKeys` writes.
struct LedgerJSONTests {
    @Test func aDebitsAnswerIsWhatTheEncoderWrites() throws {
        var random = SystemRandomNumberGenerator()
        let texts = ["bench use", "", "quote \" backslash \\ slash / tab \t line \n", "ümlaut ✓ 😀", "\u{01}\u{1F}"]
        let metadata: [JSONValue?] = [nil, .object([:]), ["source": "app", "n": 3, "nested": ["b": [true, .null], "a": "x"]], .array([1, "two"])]
        for _ in 0..<500 {
            let transaction = LedgerTransaction(
                id: UUID().uuidString.lowercased(), userId: texts.randomElement(using: &random)! + "user",
                type: ["usage", "purchase", "refund"].randomElement(using: &random)!, status: "completed",
                amount: Int64.random(in: -1_000_000...1_000_000, using: &random), balanceBefore: Int64.random(in: 0...Int64.max / 2, using: &random),
                balanceAfter: Int64.random(in: 0...1_000, using: &random), appId: texts.randomElement(using: &random)!,
                description: texts.randomElement(using: &random)!, metadata: metadata.randomElement(using: &random)!,
                idempotencyKey: Bool.random(using: &random) ? nil : texts.randomElement(using: &random)!,
                createdAt: Date(timeIntervalSince1970: Double.random(in: 0...4_000_000_000, using: &random)),
                completedAt: Bool.random(using: &random) ? nil : Date(timeIntervalSince1970: Double.random(in: 0...4_000_000_000, using: &random)))
            let answer = UseCreditsResponse(
                LedgerRepository.Debit(
                    transaction: transaction,
                    balance: Balance(balance: Int64.random(in: 0...1_000_000, using: &random), totalEarned: 0, totalSpent: Int64.random(in: 0...1_000_000, using: &random)),
                    repeated: Bool.random(using: &random)))
            let expected = String(decoding: try JSONEncoder.sortedKeys.encode(answer), as: UTF8.self)
            #expect(String(decoding: answer.json, as: UTF8.self) == expected)
        }
    }
}
