import Foundation
import HTTPKit
import HTTPTypes
import PostgresNIO
import Testing
import TestSupport

@testable import ManaCredits

/// Two-phase reservations and grants (issue 24, spec reservations.md §6–7).
@Suite(.timeLimit(.minutes(3))) struct ReservationTests {
    typealias Answer = (status: HTTPResponse.Status, body: JSONValue)

    static func reserve(_ h: CreditsHarness, _ user: String, _ amount: Int, reason: String = "research:tavily:search", key: String? = nil, ttl: Int? = nil)
        async throws -> Answer
    {
        var body: [String: JSONValue] = ["userId": .string(user), "amount": .number(Double(amount)), "reason": .string(reason)]
        if let key { body["idempotencyKey"] = .string(key) }
        if let ttl { body["ttlSeconds"] = .number(Double(ttl)) }
        return try await h.call(.post, "/api/v1/internal/credits/reserve", service: true, json: try Self.text(.object(body)))
    }

    static func commit(_ h: CreditsHarness, _ id: String, description: String? = nil) async throws -> Answer {
        var body: [String: JSONValue] = ["reservationId": .string(id)]
        if let description { body["description"] = .string(description) }
        return try await h.call(.post, "/api/v1/internal/credits/commit", service: true, json: try Self.text(.object(body)))
    }

    static func refund(_ h: CreditsHarness, _ id: String) async throws -> Answer {
        try await h.call(.post, "/api/v1/internal/credits/refund-reservation", service: true, json: #"{"reservationId": "\#(id)"}"#)
    }

    static func text(_ value: JSONValue) throws -> String { String(decoding: try JSONEncoder().encode(value), as: UTF8.self) }

    /// The user's ledger rows, oldest first: (type, status, amount, before, after).
    static func ledger(_ h: CreditsHarness, _ user: String) async throws -> [String] {
        try await h.withDatabase { client in
            try await client.query(
                """
                SELECT format('%s %s %s %s→%s', type, status, amount, balance_before, balance_after)
                FROM credits.transactions WHERE user_id = \(user) ORDER BY seq
                """
            ).decode(String.self).reduce(into: []) { $0.append($1) }
        }
    }

    static func balance(_ h: CreditsHarness, _ user: String) async throws -> JSONValue {
        try await h.call(.get, "/api/v1/credits/balance", as: user).body
    }

    @Test func reserveThenCommitSpendsWithTheRealBalancesInTheLedger() async throws {
        try await CreditsHarness.run { (h: CreditsHarness) async throws in
            try await h.fund("ana", 100)
            let reserved = try await Self.reserve(h, "ana", 8)
            #expect(reserved.status == .ok, "\(reserved.body)")
            #expect(reserved.body["balance"] == 92)
            #expect(reserved.body["status"] == "reserved")
            let id = try #require(reserved.body["reservationId"]?.stringValue)
            #expect(reserved.body["expiresAt"]?.stringValue != nil)
            #expect(try await Self.balance(h, "ana") == ["balance": 92, "totalEarned": 100, "totalSpent": 0, "reserved": 8])
            // The ledger equals the balance while the hold is open.
            #expect(try await Self.ledger(h, "ana") == ["refund completed 100 0→100", "usage pending -8 100→92"])
            #expect(try await h.audit().isEmpty)

            // A debit in between does not make the hold's row lie.
            try await h.call(.post, "/api/v1/credits/use", as: "ana", json: #"{"amount": 2, "appId": "chat", "description": "d"}"#)
            let committed = try await Self.commit(h, id, description: "search tavily")
            #expect(committed.status == .ok, "\(committed.body)")
            #expect(committed.body["success"] == true && committed.body["status"] == "committed")
            let transactionID = try #require(committed.body["transactionId"]?.stringValue)
            #expect(try await Self.balance(h, "ana") == ["balance": 90, "totalEarned": 100, "totalSpent": 10, "reserved": 0])
            #expect(try await Self.ledger(h, "ana") == ["refund completed 100 0→100", "usage completed -8 100→92", "usage completed -2 92→90"])
            // The committed hold is the transaction, with the reason's prefix as its app, counted as usage.
            let rows = try await h.call(.get, "/api/v1/credits/transactions", as: "ana").body.array ?? []
            let hold = try #require(rows.first { $0["id"]?.stringValue == transactionID })
            #expect(hold["appId"] == "research" && hold["metadata"]?["reservationId"]?.stringValue == id)
            let used = try await h.withDatabase { client in
                try await client.query("SELECT credits_used FROM credits.usage_stats WHERE user_id = 'ana' AND app_id = 'research'")
                    .decode(Int64.self).reduce(0, +)
            }
            #expect(used == 8)

            // A second commit answers the same transaction; a refund of it is 409 naming the status.
            let again = try await Self.commit(h, id)
            #expect(again.status == .ok && again.body["transactionId"]?.stringValue == transactionID && again.body["alreadyResolved"] == true)
            let refused = try await Self.refund(h, id)
            #expect(refused.status == .conflict && refused.body["details"]?["status"] == "committed", "\(refused.body)")
            #expect(try await Self.balance(h, "ana")["balance"] == 90)
            #expect(try await h.audit().isEmpty)
        }
    }

    @Test func reserveThenRefundGivesTheCreditsBackWithARefundRow() async throws {
        try await CreditsHarness.run { (h: CreditsHarness) async throws in
            try await h.fund("bo", 100)
            let id = try #require(try await Self.reserve(h, "bo", 30).body["reservationId"]?.stringValue)
            let refunded = try await Self.refund(h, id)
            #expect(refunded.status == .ok, "\(refunded.body)")
            #expect(refunded.body["success"] == true && refunded.body["balance"] == 100 && refunded.body["status"] == "refunded")
            #expect(try await Self.balance(h, "bo") == ["balance": 100, "totalEarned": 100, "totalSpent": 0, "reserved": 0])
            #expect(try await Self.ledger(h, "bo") == ["refund completed 100 0→100", "usage cancelled -30 100→70", "refund completed 30 70→100"])
            let again = try await Self.refund(h, id)
            #expect(again.status == .ok && again.body["balance"] == 100 && again.body["alreadyResolved"] == true)
            let late = try await Self.commit(h, id)
            #expect(late.status == .conflict && late.body["message"] == "Reservation already resolved" && late.body["details"]?["status"] == "refunded")
            #expect(try await h.audit().isEmpty)
        }
    }

    @Test func aReserveRetriedWithItsKeyHoldsOnce() async throws {
        try await CreditsHarness.run { (h: CreditsHarness) async throws in
            try await h.fund("cy", 50)
            let first = try await Self.reserve(h, "cy", 20, key: "job-1")
            let second = try await Self.reserve(h, "cy", 20, key: "job-1")
            #expect(first.status == .ok && second.status == .ok)
            #expect(first.body["reservationId"] == second.body["reservationId"])
            #expect(second.body["balance"] == 30)
            // A different amount under the same key.
            let other = try await Self.reserve(h, "cy", 21, key: "job-1")
            #expect(other.status == .conflict && other.body["details"]?["field"] == "idempotencyKey", "\(other.body)")
            #expect(try await Self.balance(h, "cy")["reserved"] == 20)
            // After a commit the key still answers the same reservation, now committed.
            let id = try #require(first.body["reservationId"]?.stringValue)
            _ = try await Self.commit(h, id)
            let after = try await Self.reserve(h, "cy", 20, key: "job-1")
            #expect(after.body["reservationId"]?.stringValue == id && after.body["status"] == "committed")
            #expect(try await Self.ledger(h, "cy").count == 2)
            #expect(try await h.audit().isEmpty)
        }
    }

    @Test func fiftyConcurrentReservesAgainstTwentyCreditsHoldTwenty() async throws {
        try await CreditsHarness.run { (h: CreditsHarness) async throws in
            try await h.fund("crowd", 20)
            let statuses = try await withThrowingTaskGroup(of: Int.self) { group in
                for _ in 0..<50 { group.addTask { try await Self.reserve(h, "crowd", 1).status.code } }
                return try await group.reduce(into: [Int]()) { $0.append($1) }
            }
            #expect(statuses.filter { $0 == 200 }.count == 20)
            #expect(statuses.filter { $0 == 402 }.count == 30)
            #expect(try await Self.balance(h, "crowd") == ["balance": 0, "totalEarned": 20, "totalSpent": 0, "reserved": 20])
            #expect(try await h.audit().isEmpty)
        }
    }

    @Test func aConcurrentCommitAndRefundOfOneReservationHaveOneWinner() async throws {
        try await CreditsHarness.run { (h: CreditsHarness) async throws in
            try await h.fund("duel", 1000)
            for round in 0..<10 {
                let id = try #require(try await Self.reserve(h, "duel", 10, key: "round-\(round)").body["reservationId"]?.stringValue)
                async let commit = Self.commit(h, id)
                async let refund = Self.refund(h, id)
                let (committed, refunded) = try await (commit, refund)
                // Exactly one took effect; the other saw 409 naming the winner's status.
                let outcomes = [committed.status, refunded.status]
                #expect(outcomes.filter { $0 == .ok }.count == 1, "\(committed.body) \(refunded.body)")
                #expect(outcomes.filter { $0 == .conflict }.count == 1)
                let loser = committed.status == .conflict ? committed.body : refunded.body
                #expect(loser["details"]?["status"] == (committed.status == .ok ? "committed" : "refunded"))
            }
            #expect(try await Self.balance(h, "duel")["reserved"] == 0)
            #expect(try await h.audit().isEmpty)
        }
    }

    @Test func theSweeperRefundsAnExpiredReservationAndALateCommitIs409() async throws {
        try await CreditsHarness.run(ledger: { $0.reservationSweepInterval = .seconds(1) }) { (h: CreditsHarness) async throws in
            try await h.fund("late", 50)
            let id = try #require(try await Self.reserve(h, "late", 15, ttl: 60).body["reservationId"]?.stringValue)
            let kept = try #require(try await Self.reserve(h, "late", 5, ttl: 3600).body["reservationId"]?.stringValue)
            // Sixty seconds is the shortest TTL the API takes: the test moves this one's expiry
            // into the past instead of waiting for it.
            try await h.withDatabase { client in
                try await client.query("UPDATE credits.reservations SET expires_at = now() - interval '1 second' WHERE id = \(id)::uuid")
            }
            try await eventually(within: .seconds(30)) {
                (try? await Self.balance(h, "late"))?["reserved"] == 5
            }
            #expect(try await Self.balance(h, "late") == ["balance": 45, "totalEarned": 50, "totalSpent": 0, "reserved": 5])
            // The sweep's gauges: one open reservation holding 5 credits.
            try await eventually(within: .seconds(30)) {
                let text = (try? await h.caller.sendText(.get, "/metrics").text) ?? ""
                return (text.contains("credits_reservations_open 1\n") || text.contains("credits_reservations_open 1.0"))
                    && (text.contains("credits_reservations_reserved_credits 5\n") || text.contains("credits_reservations_reserved_credits 5.0"))
            }
            let late = try await Self.commit(h, id)
            #expect(late.status == .conflict && late.body["details"]?["status"] == "expired", "\(late.body)")
            let refundAgain = try await Self.refund(h, id)
            #expect(refundAgain.status == .ok && refundAgain.body["status"] == "expired" && refundAgain.body["alreadyResolved"] == true)
            #expect(try await Self.commit(h, kept).status == .ok)
            let metrics = try await h.caller.sendText(.get, "/metrics").text
            #expect(metrics.contains("credits_reservations_expired_total 1"), "\(metrics)")
            #expect(try await Self.ledger(h, "late").contains("refund completed 15 30→45"))
            #expect(try await h.audit().isEmpty)
        }
    }

    @Test func aCommitPastTheExpiryBeforeTheSweeperRanExpiresItAndIs409() async throws {
        try await CreditsHarness.run(ledger: { $0.reservationSweepInterval = nil }) { (h: CreditsHarness) async throws in
            try await h.fund("eve", 10)
            let id = try #require(try await Self.reserve(h, "eve", 10).body["reservationId"]?.stringValue)
            try await h.withDatabase { client in
                try await client.query("UPDATE credits.reservations SET expires_at = now() - interval '1 second' WHERE id = \(id)::uuid")
            }
            let late = try await Self.commit(h, id)
            #expect(late.status == .conflict && late.body["details"]?["status"] == "expired")
            #expect(try await Self.balance(h, "eve") == ["balance": 10, "totalEarned": 10, "totalSpent": 0, "reserved": 0])
            #expect(try await h.audit().isEmpty)
        }
    }

    @Test func twentyConcurrentIdenticalGrantsPayOnce() async throws {
        try await CreditsHarness.run { (h: CreditsHarness) async throws in
            let body = #"{"userId": "fan", "amount": 25, "reason": "feedback", "referenceId": "fb-1_reaction_u2"}"#
            let answers = try await withThrowingTaskGroup(of: Answer.self) { group in
                for _ in 0..<20 { group.addTask { try await h.call(.post, "/api/v1/internal/credits/grant", service: true, json: body) } }
                return try await group.reduce(into: [Answer]()) { $0.append($1) }
            }
            #expect(answers.allSatisfy { $0.status == .ok }, "\(answers.map(\.body))")
            #expect(answers.filter { $0.body["alreadyGranted"] == false }.count == 1)
            #expect(Set(answers.compactMap { $0.body["transactionId"]?.stringValue }).count == 1)
            #expect(answers.allSatisfy { $0.body["newBalance"] == 25 && $0.body["ok"] == true })
            #expect(try await Self.balance(h, "fan") == ["balance": 25, "totalEarned": 25, "totalSpent": 0, "reserved": 0])
            let rows = try await h.call(.get, "/api/v1/credits/transactions", as: "fan").body.array ?? []
            #expect(rows.count == 1 && rows.first?["type"] == "grant" && rows.first?["appId"] == "community")
            #expect(rows.first?["description"] == "Reward: feedback")
            #expect(rows.first?["metadata"] == ["reason": "feedback", "referenceId": "fb-1_reaction_u2"])
            let other = try await h.call(
                .post, "/api/v1/internal/credits/grant", service: true,
                json: #"{"userId": "fan", "amount": 500, "reason": "feedback", "referenceId": "fb-1_reaction_u2"}"#)
            #expect(other.status == .conflict && other.body["details"]?["field"] == "referenceId")
            #expect(try await h.audit().isEmpty)
        }
    }

    @Test func badInputIsA400NamingTheFieldAndChangesNothing() async throws {
        try await CreditsHarness.run { (h: CreditsHarness) async throws in
            try await h.fund("val", 10)
            let cases: [(String, String, String)] = [
                ("reserve", #"{"userId": "val", "amount": 0, "reason": "r"}"#, "amount"),
                ("reserve", #"{"userId": "val", "amount": 1.5, "reason": "r"}"#, "amount"),
                ("reserve", #"{"userId": "val", "amount": 1000001, "reason": "r"}"#, "amount"),
                ("reserve", #"{"userId": "val", "amount": 1}"#, "reason"),
                ("reserve", #"{"userId": "val", "amount": 1, "reason": "r", "ttlSeconds": 59}"#, "ttlSeconds"),
                ("reserve", #"{"userId": "val", "amount": 1, "reason": "r", "ttlSeconds": 86401}"#, "ttlSeconds"),
                ("reserve", #"{"userId": "val", "amount": 1, "reason": "r", "idempotencyKey": ""}"#, "idempotencyKey"),
                ("reserve", #"{"amount": 1, "reason": "r"}"#, "userId"),
                ("commit", #"{"reservationId": "not-a-uuid"}"#, "reservationId"),
                ("commit", #"{}"#, "reservationId"),
                ("refund-reservation", #"{"reservationId": 7}"#, ""),
                ("grant", #"{"userId": "val", "amount": 5, "reason": "r"}"#, "referenceId"),
                ("grant", #"{"userId": "val", "amount": 5, "reason": "\#(String(repeating: "r", count: 65))", "referenceId": "x"}"#, "reason"),
            ]
            for (path, json, field) in cases {
                let answer = try await h.call(.post, "/api/v1/internal/credits/\(path)", service: true, json: json)
                #expect(answer.status == .badRequest, "\(path) \(json): \(answer.status) \(answer.body)")
                if !field.isEmpty { #expect(answer.body["details"]?["field"]?.stringValue == field, "\(path) \(json): \(answer.body)") }
            }
            let malformed = try await h.call(.post, "/api/v1/internal/credits/reserve", service: true, json: "{not json")
            #expect(malformed.status == .badRequest)
            // Unknown ids are 404 with the upstream text; a user without a balance row is 404 at reserve.
            let unknown = try await Self.commit(h, UUID().uuidString)
            #expect(unknown.status == .notFound && unknown.body["message"] == "Reservation not found")
            #expect(try await Self.refund(h, UUID().uuidString).status == .notFound)
            let nobody = try await Self.reserve(h, "nobody", 1)
            #expect(nobody.status == .notFound && nobody.body["message"] == "User balance not found")
            let short = try await Self.reserve(h, "val", 11)
            #expect(short.status == .paymentRequired && short.body["details"]?["available"] == 10 && short.body["details"]?["required"] == 11)
            // Without the service key: 401.
            let anonymous = try await h.call(.post, "/api/v1/internal/credits/reserve", json: #"{"userId": "val", "amount": 1, "reason": "r"}"#)
            #expect(anonymous.status == .unauthorized)
            #expect(try await Self.balance(h, "val") == ["balance": 10, "totalEarned": 10, "totalSpent": 0, "reserved": 0])
            #expect(try await Self.ledger(h, "val").count == 1)
        }
    }

    @Test func theLedgerRefusesEveryChangeButAHoldsOneTransition() async throws {
        try await CreditsHarness.run { (h: CreditsHarness) async throws in
            try await h.fund("imm", 10)
            _ = try await Self.reserve(h, "imm", 4)
            let refused = try await h.withDatabase { client -> [Bool] in
                var results: [Bool] = []
                for sql in [
                    "UPDATE credits.transactions SET amount = -3 WHERE user_id = 'imm' AND status = 'pending'",
                    "UPDATE credits.transactions SET status = 'completed', description = 'x' WHERE user_id = 'imm' AND status = 'pending'",
                    "UPDATE credits.transactions SET status = 'pending' WHERE user_id = 'imm' AND status = 'completed'",
                    "DELETE FROM credits.transactions WHERE user_id = 'imm' AND status = 'pending'",
                ] {
                    do {
                        try await client.query(PostgresQuery(unsafeSQL: sql))
                        results.append(false)
                    } catch {
                        results.append(true)
                    }
                }
                return results
            }
            #expect(refused == [true, true, true, true])
            #expect(try await h.audit().isEmpty)
        }
    }
}
