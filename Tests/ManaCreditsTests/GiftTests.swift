import Foundation
import HTTPKit
import Hummingbird
import PostgresNIO
import Testing
import TestSupport

@testable import ManaCredits

@Suite(.timeLimit(.minutes(3))) struct GiftTests {
    static func redemptions(_ h: CreditsHarness, code: String) async throws -> [String] {
        try await h.withDatabase { client in
            try await client.query(
                """
                SELECT r.status FROM gifts.gift_redemptions r JOIN gifts.gift_codes c ON c.id = r.gift_code_id
                WHERE c.code = \(code) ORDER BY r.created_at, r.status
                """, logger: TestDatabase.logger
            ).decode(String.self).reduce(into: [String]()) { $0.append($1) }
        }
    }

    static func balance(_ h: CreditsHarness, _ user: String) async throws -> JSONValue? {
        try await h.call(.get, "/api/v1/credits/balance", as: user).body["balance"]
    }

    @Test func createLookUpRedeemAndDeplete() async throws {
        try await CreditsHarness.run { (h: CreditsHarness) async throws in
            try await h.fund("alice", 100)
            let created = try await h.call(
                .post, "/api/v1/gifts", as: "alice", json: #"{"credits": 25, "message": "Viel Spaß", "creatorName": "Alice"}"#)
            #expect(created.status == .created)
            let code = try #require(created.body["code"]?.stringValue)
            #expect(code.count == 10 && code.allSatisfy { GiftCode.alphabet.contains($0) })
            #expect(created.body["shortUrl"] == .string("https://gifts.test/g/\(code)"))
            #expect(created.body["status"] == "active" && created.body["type"] == "simple" && created.body["totalCredits"] == 25)
            #expect(try await Self.balance(h, "alice") == 75)

            let lookedUp = try await h.call(.get, "/api/v1/gifts/\(code.lowercased())")
            #expect(lookedUp.status == .ok)
            #expect(Set(lookedUp.body.objectValue?.keys.map { $0 } ?? []) == [
                "code", "type", "status", "totalCredits", "redeemed", "message", "creatorName", "expiresAt",
            ])
            #expect(lookedUp.body["redeemed"] == false && lookedUp.body["creatorName"] == "Alice")
            let expires = try #require(lookedUp.body["expiresAt"]?.stringValue.flatMap(Timestamp.parseDate))
            #expect(abs(expires.timeIntervalSinceNow - 90 * 86_400) < 3_600)

            let redeemed = try await h.call(.post, "/api/v1/gifts/\(code)/redeem", as: "bob")
            #expect(redeemed.body == ["success": true, "creditsReceived": 25, "message": "Viel Spaß", "creatorName": "Alice"])
            #expect(try await Self.balance(h, "bob") == 25)
            let after = try await h.call(.get, "/api/v1/gifts/\(code)").body
            #expect(after["status"] == "depleted" && after["redeemed"] == true)

            #expect(try await h.call(.post, "/api/v1/gifts/\(code)/redeem", as: "bob").status == .badRequest)
            #expect(try await h.call(.post, "/api/v1/gifts/\(code)/redeem", as: "carol").status == .badRequest)
            #expect(try await Self.redemptions(h, code: code) == ["success", "failed_already_claimed", "failed_depleted"])

            let mine = try await h.call(.get, "/api/v1/gifts/me/created", as: "alice").body.array ?? []
            #expect(mine.count == 1 && mine.first?["code"] == .string(code) && mine.first?["id"] != nil)
            let received = try await h.call(.get, "/api/v1/gifts/me/received", as: "bob").body.array ?? []
            #expect(received.count == 1 && received.first?["creditsReceived"] == 25)

            try await h.fund("poor", 10)
            let short = try await h.call(.post, "/api/v1/gifts", as: "poor", json: #"{"credits": 50}"#)
            #expect(short.status == .paymentRequired)
            #expect(try await h.call(.get, "/api/v1/gifts/me/created", as: "poor").body == [])
            #expect(try await h.call(.get, "/api/v1/gifts/NOSUCHCODE").status == .notFound)
            #expect(try await h.call(.post, "/api/v1/gifts/NOSUCHCODE/redeem", as: "bob").status == .notFound)
            #expect(try await h.call(.post, "/api/v1/gifts", json: #"{"credits": 5}"#).status == .unauthorized)
            #expect(try await h.audit().isEmpty)
        }
    }

    @Test func twentyConcurrentRedeemsGiveOneSuccess() async throws {
        // All twenty come from one address: the per-address limit is raised for them.
        try await CreditsHarness.run(gifts: { $0.redeemLimit = 100 }) { (h: CreditsHarness) async throws in
            try await h.fund("giver", 500)
            let code = try #require(try await h.call(.post, "/api/v1/gifts", as: "giver", json: #"{"credits": 300}"#).body["code"]?.stringValue)
            let statuses = try await withThrowingTaskGroup(of: Int.self) { group in
                for racer in 0..<20 {
                    group.addTask { try await h.call(.post, "/api/v1/gifts/\(code)/redeem", as: "racer-\(racer)").status.code }
                }
                return try await group.reduce(into: [Int]()) { $0.append($1) }
            }
            #expect(statuses.filter { $0 == 200 }.count == 1)
            #expect(statuses.filter { $0 == 400 }.count == 19)
            let rows = try await Self.redemptions(h, code: code)
            #expect(rows.filter { $0 == "success" }.count == 1 && rows.filter { $0 == "failed_depleted" }.count == 19)
            let received = try await h.withDatabase { client in
                try await client.query(
                    "SELECT coalesce(sum(amount), 0)::bigint FROM credits.transactions WHERE type = 'gift' AND amount > 0",
                    logger: TestDatabase.logger
                ).decode(Int64.self).reduce(0, +)
            }
            #expect(received == 300)
            #expect(try await h.audit().isEmpty)
        }
    }

    @Test func personalizedCodesAndPendingRedemption() async throws {
        try await CreditsHarness.run { (h: CreditsHarness) async throws in
            try await h.fund("aunt", 1_000)
            let created = try await h.call(
                .post, "/api/v1/gifts", as: "aunt", json: #"{"credits": 100, "type": "personalized", "targetEmail": "Dana@Example.com"}"#)
            #expect(created.status == .created && created.body["targetEmail"] == "Dana@Example.com")
            let code = try #require(created.body["code"]?.stringValue)
            let lookup = try await h.call(.get, "/api/v1/gifts/\(code)").body
            #expect(lookup["targetEmail"] == nil && lookup["type"] == "personalized")

            let wrong = try await h.call(.post, "/api/v1/gifts/\(code)/redeem", as: "eve", email: "eve@example.com")
            #expect(wrong.status == .forbidden)
            let right = try await h.call(.post, "/api/v1/gifts/\(code)/redeem", as: "dana", email: "dana@example.com")
            #expect(right.status == .ok && right.body["creditsReceived"] == 100)
            #expect(try await Self.redemptions(h, code: code) == ["failed_wrong_user", "success"])

            for credits in [30, 45] {
                let json = #"{"credits": \#(credits), "targetEmail": "newbie@example.com"}"#
                #expect(try await h.call(.post, "/api/v1/gifts", as: "aunt", json: json).status == .created)
            }
            let body = #"{"userId": "newbie-1", "email": "NEWBIE@example.com"}"#
            #expect(try await h.call(.post, "/api/v1/internal/gifts/redeem-pending", json: body).status == .unauthorized)
            let pending = try await h.call(.post, "/api/v1/internal/gifts/redeem-pending", service: true, json: body)
            #expect(pending.body == ["redeemed": 2, "totalCredits": 75])
            #expect(try await Self.balance(h, "newbie-1") == 75)
            let again = try await h.call(.post, "/api/v1/internal/gifts/redeem-pending", service: true, json: body)
            #expect(again.body == ["redeemed": 0, "totalCredits": 0])
            let bad = try await h.call(
                .post, "/api/v1/internal/gifts/redeem-pending", service: true, json: #"{"userId": "x", "email": "nope"}"#)
            #expect(bad.status == .badRequest && bad.body["details"]?["field"] == "email")
            #expect(try await h.audit().isEmpty)
        }
    }

    @Test func cancellingRefundsOnce() async throws {
        try await CreditsHarness.run { (h: CreditsHarness) async throws in
            try await h.fund("maker", 100)
            let created = try await h.call(.post, "/api/v1/gifts", as: "maker", json: #"{"credits": 40}"#).body
            let id = try #require(created["id"]?.stringValue)
            let code = try #require(created["code"]?.stringValue)
            #expect(try await Self.balance(h, "maker") == 60)
            #expect(try await h.call(.delete, "/api/v1/gifts/\(id)", as: "stranger").status == .notFound)
            #expect(try await h.call(.delete, "/api/v1/gifts/not-a-uuid", as: "maker").status == .notFound)
            let cancelled = try await h.call(.delete, "/api/v1/gifts/\(id)", as: "maker")
            #expect(cancelled.body == ["success": true, "refundedCredits": 40])
            #expect(try await Self.balance(h, "maker") == 100)
            #expect(try await h.call(.delete, "/api/v1/gifts/\(id)", as: "maker").status == .badRequest)
            #expect(try await Self.balance(h, "maker") == 100)
            #expect(try await h.call(.post, "/api/v1/gifts/\(code)/redeem", as: "late").status == .badRequest)
            #expect(try await h.call(.get, "/api/v1/gifts/\(code)").body["status"] == "cancelled")
            #expect(try await h.audit().isEmpty)
        }
    }

    @Test func concurrentExpiryRunsRefundEachCodeOnce() async throws {
        try await CreditsHarness.run { (h: CreditsHarness) async throws in
            try await h.fund("hoarder", 3_000)
            for _ in 0..<30 {
                #expect(try await h.call(.post, "/api/v1/gifts", as: "hoarder", json: #"{"credits": 100}"#).status == .created)
            }
            #expect(try await Self.balance(h, "hoarder") == 0)
            let counts = try await h.withDatabase { client in
                try await client.query("UPDATE gifts.gift_codes SET expires_at = now() - interval '1 minute'", logger: TestDatabase.logger)
                let gifts = GiftRepository(client: client, baseURL: "", logger: TestDatabase.logger)
                return try await withThrowingTaskGroup(of: Int.self) { group in
                    for _ in 0..<4 { group.addTask { try await gifts.expire(batchSize: 7) } }
                    return try await group.reduce(into: [Int]()) { $0.append($1) }
                }
            }
            print("four concurrent expiry runs expired \(counts)")
            #expect(counts.reduce(0, +) == 30)
            #expect(try await Self.balance(h, "hoarder") == 3_000)
            let refunds = try await h.withDatabase { client in
                try await client.query(
                    "SELECT count(*), count(DISTINCT metadata->>'giftCodeId') FROM credits.transactions WHERE type = 'refund' AND app_id = 'gifts'",
                    logger: TestDatabase.logger
                ).decode((Int, Int).self).reduce(into: [(Int, Int)]()) { $0.append($1) }
            }
            #expect(refunds.first! == (30, 30))
            #expect(try await h.withDatabase { try await GiftRepository(client: $0, baseURL: "", logger: TestDatabase.logger).expire() } == 0)
            #expect(try await h.audit().isEmpty)
        }
    }

    @Test func burstsBeyondTheLimitsAre429WithRetryAfter() async throws {
        try await CreditsHarness.run(gifts: { $0.lookupLimit = 5; $0.redeemLimit = 3; $0.limitWindow = .seconds(3600) }) { (h: CreditsHarness) async throws in
            var lookups: [(Int, String?)] = []
            for _ in 0..<8 {
                let answer = try await h.caller.sendText(.get, "/api/v1/gifts/ABCDEFGHJK")
                lookups.append((answer.status.code, answer.headers.first(name: "Retry-After")))
            }
            #expect(lookups.prefix(5).allSatisfy { $0.0 == 404 })
            #expect(lookups.suffix(3).allSatisfy { $0.0 == 429 && Int($0.1 ?? "") ?? 0 >= 1 })
            var redeems: [Int] = []
            for _ in 0..<5 { redeems.append(try await h.call(.post, "/api/v1/gifts/ABCDEFGHJK/redeem", as: "guesser").status.code) }
            #expect(redeems == [404, 404, 404, 429, 429])
        }
    }

    @Test(arguments: [
        (#"{"credits": 0}"#, "credits"), (#"{"credits": 10001}"#, "credits"), (#"{"credits": 2.5}"#, "credits"),
        (#"{"credits": "10"}"#, "credits"), (#"{}"#, "totalCredits"),
        (#"{"credits": 5, "message": "\#(String(repeating: "m", count: 501))"}"#, "message"),
        (#"{"credits": 5, "type": "personalized", "targetEmail": "not-an-email"}"#, "targetEmail"),
        (#"{"credits": 5, "type": "personalized"}"#, "targetEmail"), (#"{"credits": 5, "type": "weird"}"#, "type"),
        (#"{"credits": 5, "expirationDays": 0}"#, "expirationDays"),
    ] as [(String, String)])
    func badGiftBodiesAre400(json: String, field: String) async throws {
        try await CreditsHarness.run { (h: CreditsHarness) async throws in
            try await h.fund("careful", 20_000)
            let result = try await h.call(.post, "/api/v1/gifts", as: "careful", json: json)
            #expect(result.status == .badRequest, "\(result.body)")
            #expect(result.body["details"]?["field"] == .string(field), "\(result.body)")
            #expect(try await Self.balance(h, "careful") == 20_000)
        }
    }
}

@Suite struct UnstorableTextTests {
    @Test func aNulCharacterIs400AndChangesNothing() async throws {
        try await CreditsHarness.run { (h: CreditsHarness) async throws in
            let use = try await h.call(
                .post, "/api/v1/internal/credits/use", service: true,
                json: #"{"userId": "a\u0000b", "amount": 1, "appId": "x", "description": "d"}"#)
            #expect(use.status == .badRequest && use.body["message"]?.stringValue?.contains("NUL") == true, "\(use.body)")
            #expect(try await h.call(.get, "/api/v1/gifts/AB%00CD").status == .notFound)  // the path stays encoded: no such code
            #expect(try await h.audit().isEmpty)
        }
    }
}
