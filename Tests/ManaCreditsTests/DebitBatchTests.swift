import Foundation
import HTTPKit
import Testing
import TestSupport

@testable import ManaCredits

/// Debits that go to PostgreSQL together (``StatementBatches``, `credits.debit_batch`) on a
/// live service with one debit lane: each debit's outcome (200 or 402, a repeat) is its own,
/// balances never overdraw, metadata is stored as sent, and the ledger audit stays clean.
@Suite(.timeLimit(.minutes(3))) struct DebitBatchTests {
    @Test func debitsThatWentTogetherHaveEachTheirOwnOutcome() async throws {
        try await CreditsHarness.run(ledger: { $0.debitLanes = 1 }) { (h: CreditsHarness) async throws in
            var round = 0
            while try await h.caller.counter("credits_debit_batches_total") < 3, round < 20 {
                round += 1
                let users = (0..<4).map { "r\(round)-u\($0)" }
                for user in users { try await h.fund(user, 10) }
                // Per user: five debits of 3 (three fit in 10), and one repeat of the first's key.
                let results = try await withThrowingTaskGroup(of: (Int, Int, JSONValue).self) { group in
                    for n in 0..<24 {
                        let user = users[n % 4]
                        let metadata = n % 2 == 0 ? #", "metadata": {"n": \#(n), "a": "x"}"# : ""
                        let key = n / 4 == 0 || n / 4 == 5 ? #", "idempotencyKey": "first""# : ""
                        group.addTask {
                            let answer = try await h.call(
                                .post, "/api/v1/credits/use", as: user,
                                json: #"{"amount": 3, "appId": "a", "description": "n\#(n)"\#(metadata)\#(key)}"#)
                            return (n, answer.status.code, answer.body)
                        }
                    }
                    return try await group.reduce(into: [(Int, Int, JSONValue)]()) { $0.append($1) }
                }
                for user in users {
                    let mine = results.filter { users[$0.0 % 4] == user }
                    // The keyed pair is one debit (or both 402 when it came last): 3 of 5 debits fit.
                    let debited = Set(mine.filter { $0.1 == 200 }.compactMap { $0.2["transaction"]?["id"] })
                    #expect(debited.count == 3, "\(user): \(mine.map { ($0.0, $0.1) })")
                    #expect(mine.allSatisfy { $0.1 == 200 || $0.1 == 402 })
                    let balance = try await h.call(.get, "/api/v1/credits/balance", as: user).body
                    #expect(balance["balance"] == 1)
                    let listed = try await h.call(.get, "/api/v1/credits/transactions?limit=100", as: user).body.array ?? []
                    for transaction in listed where transaction["type"] == "usage" {
                        let n = Int(transaction["description"]?.stringValue?.dropFirst() ?? "") ?? -1
                        let expected: JSONValue = n % 2 == 0 ? ["a": "x", "n": .number(Double(n))] : .null
                        #expect(transaction["metadata"] == expected, "\(transaction)")
                    }
                }
            }
            #expect(try await h.caller.counter("credits_debit_batches_total") >= 3)
            #expect(try await h.caller.counter("credits_debit_batches_refused_total") == 0)
            #expect(try await h.audit().isEmpty)
        }
    }
}
