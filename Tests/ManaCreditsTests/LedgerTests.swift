import Foundation
import HTTPKit
import PostgresNIO
import Testing
import TestSupport

@testable import ManaCredits

@Suite(.timeLimit(.minutes(3))) struct LedgerTests {
    @Test func balanceStartsAtZeroAndUseDebits() async throws {
        try await CreditsHarness.run { (h: CreditsHarness) async throws in
            let empty = try await h.call(.get, "/api/v1/credits/balance", as: "alice")
            #expect(empty.status == .ok)
            #expect(empty.body == ["balance": 0, "totalEarned": 0, "totalSpent": 0, "reserved": 0])
            try await h.fund("alice", 100)
            let use = try await h.call(
                .post, "/api/v1/credits/use", as: "alice",
                json: #"{"amount": 30, "appId": "todo", "description": "AI summary", "metadata": {"model": "x"}}"#)
            #expect(use.status == .ok)
            #expect(use.body["success"] == true)
            #expect(use.body["newBalance"] == ["balance": 70, "totalSpent": 30])
            let transaction = try #require(use.body["transaction"])
            #expect(transaction["type"] == "usage")
            #expect(transaction["status"] == "completed")
            #expect(transaction["amount"] == -30)
            #expect(transaction["balanceBefore"] == 100)
            #expect(transaction["balanceAfter"] == 70)
            #expect(transaction["appId"] == "todo")
            #expect(transaction["userId"] == "alice")
            #expect(transaction["metadata"] == ["model": "x"])
            for key in ["id", "description", "createdAt", "completedAt"] { #expect(transaction[key] != nil, "\(key)") }
            #expect(transaction["id"]?.stringValue == transaction["id"]?.stringValue?.lowercased())
            let balance = try await h.call(.get, "/api/v1/credits/balance", as: "alice")
            #expect(balance.body == ["balance": 70, "totalEarned": 100, "totalSpent": 30, "reserved": 0])
            #expect(try await h.audit().isEmpty)
        }
    }

    @Test func aDebitBeyondTheBalanceIs402AndChangesNothing() async throws {
        try await CreditsHarness.run { (h: CreditsHarness) async throws in
            let none = try await h.call(.post, "/api/v1/credits/use", as: "bob", json: #"{"amount": 1, "appId": "a", "description": "d"}"#)
            #expect(none.status.code == 402)
            #expect(none.body["details"] == ["required": 1, "available": 0])
            try await h.fund("bob", 5)
            let short = try await h.call(.post, "/api/v1/credits/use", as: "bob", json: #"{"amount": 6, "appId": "a", "description": "d"}"#)
            #expect(short.status.code == 402)
            #expect(short.body["statusCode"] == 402)
            #expect(short.body["details"] == ["required": 6, "available": 5])
            #expect(try await h.call(.get, "/api/v1/credits/balance", as: "bob").body["balance"] == 5)
        }
    }

    @Test(arguments: [
        (#"{"amount": 0, "appId": "a", "description": "d"}"#, "amount"),
        (#"{"amount": -5, "appId": "a", "description": "d"}"#, "amount"),
        (#"{"amount": 1.5, "appId": "a", "description": "d"}"#, "amount"),
        (#"{"amount": "5", "appId": "a", "description": "d"}"#, "amount"),
        (#"{"amount": 10000001, "appId": "a", "description": "d"}"#, "amount"),
        (#"{"appId": "a", "description": "d"}"#, "amount"),
        (#"{"amount": 1, "description": "d"}"#, "appId"),
        (#"{"amount": 1, "appId": "", "description": "d"}"#, "appId"),
        (#"{"amount": 1, "appId": "a"}"#, "description"),
        (#"{"amount": 1, "appId": "a", "description": "d", "metadata": [1]}"#, "metadata"),
        (#"{"amount": 1, "appId": "a", "description": "d", "idempotencyKey": ""}"#, "idempotencyKey"),
    ])
    func badUseBodiesAre400NamingTheField(json: String, field: String) async throws {
        try await CreditsHarness.run { (h: CreditsHarness) async throws in
            try await h.fund("carol", 100)
            let result = try await h.call(.post, "/api/v1/credits/use", as: "carol", json: json)
            #expect(result.status == .badRequest)
            #expect(result.body["details"]?["field"] == .string(field), "\(result.body)")
            #expect(try await h.call(.get, "/api/v1/credits/balance", as: "carol").body["balance"] == 100)
        }
    }

    @Test func longDescriptionsAndLargeMetadataAre400() async throws {
        try await CreditsHarness.run { (h: CreditsHarness) async throws in
            try await h.fund("dora", 10)
            let long = String(repeating: "x", count: 501)
            let result = try await h.call(.post, "/api/v1/credits/use", as: "dora", json: #"{"amount": 1, "appId": "a", "description": "\#(long)"}"#)
            #expect(result.body["details"]?["field"] == "description")
            let big = String(repeating: "y", count: 17_000)
            let meta = try await h.call(.post, "/api/v1/credits/use", as: "dora",
                                        json: #"{"amount": 1, "appId": "a", "description": "d", "metadata": {"k": "\#(big)"}}"#)
            #expect(meta.status == .badRequest)
            #expect(meta.body["details"]?["field"] == "metadata")
        }
    }

    @Test func routesNeedATokenOrTheServiceKey() async throws {
        try await CreditsHarness.run { (h: CreditsHarness) async throws in
            for uri in ["/api/v1/credits/balance", "/api/v1/credits/transactions", "/api/v1/credits/packages"] {
                #expect(try await h.call(.get, uri).status == .unauthorized)
            }
            #expect(try await h.call(.get, "/api/v1/internal/credits/balance/x").status == .unauthorized)
            #expect(try await h.call(.get, "/api/v1/internal/credits/balance/x", as: "alice").status == .unauthorized)
            #expect(try await h.call(.get, "/api/v1/internal/credits/balance/x", service: true).status == .ok)
        }
    }

    @Test func fiftyConcurrentDebitsNeverOverdraw() async throws {
        try await CreditsHarness.run { (h: CreditsHarness) async throws in
            try await h.fund("hot", 30)
            let statuses = try await withThrowingTaskGroup(of: Int.self) { group in
                for _ in 0..<50 {
                    group.addTask {
                        try await h.call(.post, "/api/v1/credits/use", as: "hot", json: #"{"amount": 1, "appId": "a", "description": "d"}"#)
                            .status.code
                    }
                }
                return try await group.reduce(into: [Int]()) { $0.append($1) }
            }
            #expect(statuses.filter { $0 == 200 }.count == 30)
            #expect(statuses.filter { $0 == 402 }.count == 20)
            #expect(try await h.call(.get, "/api/v1/credits/balance", as: "hot").body["balance"] == 0)
            #expect(try await h.audit().isEmpty)
        }
    }

    @Test func concurrentUsesWithOneKeyDebitOnce() async throws {
        try await CreditsHarness.run { (h: CreditsHarness) async throws in
            try await h.fund("idem", 100)
            let body = #"{"amount": 7, "appId": "a", "description": "d", "idempotencyKey": "k-1"}"#
            let results = try await withThrowingTaskGroup(of: (Int, JSONValue).self) { group in
                for _ in 0..<20 {
                    group.addTask {
                        let result = try await h.call(.post, "/api/v1/credits/use", as: "idem", json: body)
                        return (result.status.code, result.body)
                    }
                }
                return try await group.reduce(into: [(Int, JSONValue)]()) { $0.append($1) }
            }
            #expect(results.allSatisfy { $0.0 == 200 })
            let ids = Set(results.compactMap { $0.1["transaction"]?["id"] })
            #expect(ids.count == 1)
            #expect(results.filter { $0.1["message"] == "Transaction already processed" }.count == 19)
            #expect(try await h.call(.get, "/api/v1/credits/balance", as: "idem").body["balance"] == 93)
            let conflict = try await h.call(.post, "/api/v1/credits/use", as: "idem",
                                            json: #"{"amount": 8, "appId": "a", "description": "d", "idempotencyKey": "k-1"}"#)
            #expect(conflict.status == .conflict)
            // Another user's identical key is a different transaction.
            try await h.fund("other", 10)
            let other = try await h.call(.post, "/api/v1/credits/use", as: "other", json: body)
            #expect(other.status == .ok)
            #expect(other.body["message"] == nil)
            #expect(other.body["newBalance"]?["balance"] == 3)
            #expect(try await h.audit().isEmpty)
        }
    }

    @Test func transactionsPageNewestFirst() async throws {
        try await CreditsHarness.run { (h: CreditsHarness) async throws in
            try await h.fund("pager", 100)
            for amount in 1...5 {
                try await h.call(.post, "/api/v1/credits/use", as: "pager", json: #"{"amount": \#(amount), "appId": "a", "description": "d"}"#)
            }
            let first = try await h.call(.get, "/api/v1/credits/transactions?limit=2", as: "pager")
            #expect(first.body.array?.map { $0["amount"] } == [-5, -4])
            let second = try await h.call(.get, "/api/v1/credits/transactions?limit=2&offset=2", as: "pager")
            #expect(second.body.array?.map { $0["amount"] } == [-3, -2])
            let last = try await h.call(.get, "/api/v1/credits/transactions?limit=2&offset=4", as: "pager")
            #expect(last.body.array?.map { $0["amount"] } == [-1, 100])
            let all = try await h.call(.get, "/api/v1/credits/transactions", as: "pager")
            #expect(all.body.array?.count == 6)
            for bad in ["limit=0", "limit=101", "offset=-1", "limit=abc"] {
                #expect(try await h.call(.get, "/api/v1/credits/transactions?\(bad)", as: "pager").status == .badRequest)
            }
            #expect(try await h.call(.get, "/api/v1/credits/transactions", as: "stranger").body == [])
        }
    }

    @Test func internalRoutesWork() async throws {
        try await CreditsHarness.run { (h: CreditsHarness) async throws in
            let initialized = try await h.call(.post, "/api/v1/internal/credits/init", service: true, json: #"{"userId": "new"}"#)
            #expect(initialized.body == ["balance": 0, "totalEarned": 0, "totalSpent": 0, "reserved": 0])
            let again = try await h.call(.post, "/api/v1/internal/credits/init", service: true, json: #"{"userId": "new"}"#)
            #expect(again.status == .ok)
            let refund = try await h.call(.post, "/api/v1/internal/credits/refund", service: true,
                                          json: #"{"userId": "new", "amount": 40, "description": "sorry", "idempotencyKey": "sorry-1"}"#)
            #expect(refund.body["newBalance"] == ["balance": 40])
            #expect(refund.body["transaction"]?["type"] == "refund")
            #expect(refund.body["transaction"]?["appId"] == "system")
            let use = try await h.call(.post, "/api/v1/internal/credits/use", service: true,
                                       json: #"{"userId": "new", "amount": 15, "appId": "chat", "description": "d"}"#)
            #expect(use.body["newBalance"] == ["balance": 25, "totalSpent": 15])
            let balance = try await h.call(.get, "/api/v1/internal/credits/balance/new", service: true)
            #expect(balance.body == ["balance": 25, "totalEarned": 40, "totalSpent": 15, "reserved": 0])
            let missingUser = try await h.call(.post, "/api/v1/internal/credits/use", service: true,
                                               json: #"{"amount": 15, "appId": "chat", "description": "d"}"#)
            #expect(missingUser.body["details"]?["field"] == "userId")
            #expect(try await h.audit().isEmpty)
        }
    }

    @Test func usageIsAggregatedPerAppAndDay() async throws {
        try await CreditsHarness.run { (h: CreditsHarness) async throws in
            try await h.fund("stats", 100)
            for _ in 0..<3 {
                try await h.call(.post, "/api/v1/credits/use", as: "stats", json: #"{"amount": 2, "appId": "todo", "description": "d"}"#)
            }
            let rows = try await h.withDatabase { client in
                try await client.query("SELECT credits_used, transactions FROM credits.usage_stats WHERE user_id = 'stats'")
                    .decode((Int64, Int).self).reduce(into: [(Int64, Int)]()) { $0.append($1) }
            }
            #expect(rows.count == 1)
            #expect(rows.first?.0 == 6 && rows.first?.1 == 3)
        }
    }

    @Test func packagesAreListedActiveBySortOrderAndPurchasesStartEmpty() async throws {
        try await CreditsHarness.run { (h: CreditsHarness) async throws in
            try await h.withDatabase { client in
                let repository = PackageRepository(client: client, logger: TestDatabase.logger)
                for (index, package) in PackageRepository.defaults.enumerated() {
                    try await repository.upsert(name: package.name, description: package.description, credits: package.credits,
                                                priceEuroCents: package.priceEuroCents, sortOrder: index)
                }
                #expect(try await repository.deactivate(name: "Plus"))
            }
            let packages = try await h.call(.get, "/api/v1/credits/packages", as: "buyer")
            #expect(packages.body.array?.map { $0["name"] } == ["Starter", "Standard", "Max"])
            #expect(packages.body.array?.first?["priceEuroCents"] == 500)
            #expect(try await h.call(.get, "/api/v1/credits/purchases", as: "buyer").body == [])
        }
    }

    /// PostgresNIO prepares a statement once per connection with the types of the values it
    /// first binds: a debit without metadata first must not make the metadata of the next
    /// debit on that connection unreadable (it was a 500, `unsupported jsonb version number`).
    @Test func debitsWithAndWithoutMetadataShareAConnection() async throws {
        try await CreditsHarness.run { (h: CreditsHarness) async throws in
            try await h.fund("meta", 10)
            let sent: [JSONValue?] = [nil, ["k": "v"], nil, ["n": 1]]
            let stored = try await h.withDatabase { client in
                try await client.withConnection { connection in
                    var stored: [JSONValue?] = []
                    for (n, metadata) in sent.enumerated() {
                        let request = LedgerRepository.DebitRequest(
                            userID: "meta", amount: 1, appID: "a", description: "d\(n)", idempotencyKey: nil, metadata: metadata)
                        let debit = try await LedgerRepository.debit(request, on: connection, logger: TestDatabase.logger)
                        stored.append(debit.transaction.metadata)
                    }
                    return stored
                }
            }
            #expect(stored == sent)
            #expect(try await h.call(.get, "/api/v1/credits/balance", as: "meta").body["balance"] == 6)
        }
    }

    @Test func theAuditFindsAPlantedViolation() async throws {
        try await CreditsHarness.run { (h: CreditsHarness) async throws in
            try await h.fund("victim", 50)
            #expect(try await h.audit().isEmpty)
            try await h.withDatabase { client in
                // Skew the balance and its totals together, so the row's own CHECK still holds.
                try await client.query(
                    "UPDATE credits.balances SET balance = balance + 7, total_earned = total_earned + 7 WHERE user_id = 'victim'")
            }
            let violations = try await h.audit()
            #expect(violations.contains { $0.contains("sum of completed transactions") && $0.contains("victim") })
            #expect(violations.contains { $0.contains("total_earned") })
        }
    }

    @Test func transactionsAreImmutable() async throws {
        try await CreditsHarness.run { (h: CreditsHarness) async throws in
            try await h.fund("fixed", 5)
            await #expect(throws: (any Error).self) {
                try await h.withDatabase { client in try await client.query("UPDATE credits.transactions SET amount = 6") }
            }
            await #expect(throws: (any Error).self) {
                try await h.withDatabase { client in try await client.query("DELETE FROM credits.transactions") }
            }
        }
    }
}
