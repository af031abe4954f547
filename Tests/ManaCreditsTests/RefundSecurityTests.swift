import Foundation
import HTTPKit
import Hummingbird
import PostgresNIO
import SharedAuth
import Testing
import TestSupport

@testable import ManaCredits

/// `POST /api/v1/internal/credits/refund`: idempotent, capped, and attributed to a named key.
@Suite(.timeLimit(.minutes(3))) struct RefundSecurityTests {
    static func refund(
        _ h: CreditsHarness, _ json: String, key: String = CreditsHarness.serviceKey, idempotencyHeader: String? = nil
    ) async throws -> (status: HTTPResponse.Status, body: JSONValue) {
        var headers: HTTPFields = [.contentType: "application/json", .serviceKey: key]
        if let idempotencyHeader { headers[.init("Idempotency-Key")!] = idempotencyHeader }
        return try await h.caller.send(.post, "/api/v1/internal/credits/refund", headers: headers, body: json)
    }

    /// Attack: one service-key call minted up to 10,000,000 credits, and a retried call (a
    /// timeout, a replayed request) minted them again. Now a refund needs an idempotency key
    /// (a retry answers the first refund, another amount is 409), is capped at
    /// `REFUND_MAX_AMOUNT` (default 100,000), and the ledger row names the calling key.
    @Test func refundsNeedAKeyAreCappedAndAnswerRetriesOnce() async throws {
        try await CreditsHarness.run { (h: CreditsHarness) async throws in
            let missing = try await Self.refund(h, #"{"userId": "u", "amount": 50, "description": "sorry"}"#)
            #expect(missing.status == .badRequest && missing.body["details"]?["field"] == "idempotencyKey", "\(missing.body)")
            let huge = try await Self.refund(h, #"{"userId": "u", "amount": 10000000, "description": "x", "idempotencyKey": "k0"}"#)
            #expect(huge.status == .badRequest && huge.body["details"]?["maximum"] == 100_000, "\(huge.body)")

            let first = try await Self.refund(h, #"{"userId": "u", "amount": 50, "description": "sorry", "idempotencyKey": "ticket-1"}"#)
            #expect(first.status == .ok && first.body["newBalance"] == ["balance": 50])
            let retry = try await Self.refund(h, #"{"userId": "u", "amount": 50, "description": "sorry", "idempotencyKey": "ticket-1"}"#)
            #expect(retry.status == .ok && retry.body["transaction"]?["id"] == first.body["transaction"]?["id"])
            #expect(retry.body["message"] == "Transaction already processed")
            let other = try await Self.refund(h, #"{"userId": "u", "amount": 60, "description": "sorry", "idempotencyKey": "ticket-1"}"#)
            #expect(other.status == .conflict)
            // Concurrent retries of a new key: one refund.
            let statuses = try await withThrowingTaskGroup(of: Int.self) { group in
                for _ in 0..<5 {
                    group.addTask {
                        try await Self.refund(h, #"{"userId": "u", "amount": 7, "description": "d"}"#, idempotencyHeader: "ticket-2").status.code
                    }
                }
                return try await group.reduce(into: [Int]()) { $0.append($1) }
            }
            #expect(statuses.allSatisfy { $0 == 200 })
            #expect(try await h.call(.get, "/api/v1/internal/credits/balance/u", service: true).body["balance"] == 57)

            // A named key: its name is the row's caller.
            let named = try await Self.refund(
                h, #"{"userId": "u", "amount": 1, "description": "d", "idempotencyKey": "ticket-3"}"#, key: CreditsHarness.namedServiceKey)
            #expect(named.status == .ok)
            let callers = try await h.withDatabase { client in
                try await client.query(
                    "SELECT coalesce(caller, '-') FROM credits.transactions WHERE user_id = 'u' ORDER BY seq", logger: TestDatabase.logger
                ).decode(String.self).reduce(into: [String]()) { $0.append($1) }
            }
            #expect(callers == ["-", "-", "billing-bot"])
            #expect(try await h.audit().isEmpty)
        }
    }
}
