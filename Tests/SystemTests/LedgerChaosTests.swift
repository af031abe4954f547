import Foundation
import HTTPKit
import Hummingbird
import PostgresNIO
import Synchronization
import Testing
import TestSupport

/// How hard the reliability suite pushes: the short form runs in `swift test` (CI), the long
/// form with `RELIABILITY=long` (`bench/reliability`).
enum Chaos {
    static let long = ProcessInfo.processInfo.environment["RELIABILITY"] == "long"
    /// How many times a service is killed with SIGKILL and restarted.
    static let kills = long ? 8 : 2
    /// Concurrent clients.
    static let workers = long ? 16 : 6
    /// Seconds between kills.
    static let pause: ClosedRange<Double> = long ? 2.0...5.0 : 1.0...2.0

    /// Runs `work` on `workers` tasks while `chaos` runs; stops the workers when `chaos` returns.
    static func run(
        workers: Int = Chaos.workers, _ work: @escaping @Sendable (Int, Flag) async throws -> Void,
        during chaos: @escaping @Sendable () async throws -> Void
    ) async throws {
        let stop = Flag()
        try await withThrowingTaskGroup(of: Void.self) { group in
            for index in 0..<workers {
                group.addTask { try await work(index, stop) }
            }
            defer { stop.set() }
            try await chaos()
            stop.set()
            try await group.waitForAll()
        }
    }

    /// A flag set once, read by many tasks.
    final class Flag: Sendable {
        private let value = Atomic<Bool>(false)
        var isSet: Bool { value.load(ordering: .relaxed) }
        func set() { value.store(true, ordering: .relaxed) }
    }

    /// Waits until `condition` holds or `limit` passes, looking every 100 ms.
    static func until(within limit: Duration, _ condition: () -> Bool) async throws {
        let deadline = ContinuousClock.now + limit
        while !condition(), ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(100)) }
    }

    static func sleep(_ range: ClosedRange<Double>) async throws {
        try await Task.sleep(for: .milliseconds(Int(Double.random(in: range) * 1000)))
    }
}

/// The ledger under a randomized concurrent workload while mana-credits is killed with
/// SIGKILL and restarted: afterwards the audit is clean and every acknowledged operation is
/// in the ledger exactly once.
@Suite(.heavy, .timeLimit(.minutes(20))) struct LedgerChaosTests {
    /// What the clients were told (acknowledged) and what they could not know (uncertain: the
    /// connection broke before an answer).
    struct Record: Sendable {
        var transactions: [String: String] = [:]  // id → user
        var keyed: [(user: String, key: String, id: String)] = []
        var unkeyedUses: [String: (acked: Int, uncertain: Int)] = [:]
        var refunds: [String: (acked: Int, uncertain: Int)] = [:]
        var giftReservations: [String: (acked: Int, uncertain: Int)] = [:]
        var gifts: [(id: String, code: String)] = []
        var redeemed: [String] = []
        var cancelled: [String] = []
        var purchases: [String] = []
        /// Reservations acknowledged (by key), and the resolution acknowledged for them, if any.
        var reservations: [(user: String, key: String, id: String, resolved: String?)] = []
        /// Grants acknowledged: (user, referenceId, transaction).
        var grants: [(user: String, reference: String, id: String)] = []
        var counts: [String: Int] = [:]

        /// Counts one attempt of an operation without an idempotency key: acknowledged, or
        /// uncertain when no answer came (or a 5xx: the outcome is unknown to the client).
        mutating func tally(
            _ answer: (status: HTTPResponse.Status, body: JSONValue)?, acknowledged: Bool, user: String,
            _ counts: WritableKeyPath<Record, [String: (acked: Int, uncertain: Int)]>
        ) {
            if acknowledged {
                self[keyPath: counts][user, default: (0, 0)].acked += 1
            } else if (answer?.status.code ?? 500) >= 500 {
                self[keyPath: counts][user, default: (0, 0)].uncertain += 1
            }
        }
    }

    static let users = (0..<10).map { "chaos-\($0)" }

    @Test func theLedgerSurvivesSIGKILLUnderARandomizedWorkload() async throws {
        // Users are funded with more than one internal refund may carry by default.
        let system = try await JourneyTests.System(environment: ["REFUND_MAX_AMOUNT": "1000000"])
        for user in Self.users {
            try await system.fund(user, 1_000_000)
            #expect(try await system.credits(.post, "/api/v1/sync/activate", as: user).status == .ok)
        }
        let packages = try await system.credits(.get, "/api/v1/credits/packages", as: Self.users[0]).body.array ?? []
        let packageID = try #require(packages.first?["id"]?.stringValue)
        let record = Shared(Record())

        try await Chaos.run(
            { worker, stop in
                while !stop.isSet {
                    try await Self.randomOperation(system: system, record: record, packageID: packageID, worker: worker)
                }
            },
            during: {
                for _ in 0..<Chaos.kills {
                    try await Chaos.sleep(Chaos.pause)
                    try await system.killCredits()
                    try await Chaos.sleep(0.1...0.5)
                    try await system.startCredits()
                }
                try await Chaos.sleep(Chaos.pause)
                // A loaded machine acknowledges less per second: go on until the workload means
                // something (bounded), instead of judging a fixed number of seconds.
                try await Chaos.until(within: .seconds(90)) { record.withLock { $0.transactions.count } > 20 }
            })

        let done = record.withLock { $0 }
        print("ledger chaos: \(Chaos.kills) kills, operations \(done.counts.sorted { $0.key < $1.key })")
        #expect(done.transactions.count > 20, "the workload acknowledged too little to mean anything")
        try await Self.verify(done, system: system)
        try await system.stop()
    }

    /// One random operation of one client, recorded as acknowledged or uncertain.
    static func randomOperation(system: JourneyTests.System, record: Shared<Record>, packageID: String, worker: Int) async throws {
        let user = users.randomElement()!
        func count(_ name: String) { record.withLock { $0.counts[name, default: 0] += 1 } }
        let draw = Int.random(in: 0..<120)
        if draw >= 100 {
            try await twoPhaseOperation(system: system, record: record, user: user, grant: draw >= 112, count: count)
            return
        }
        switch draw {
        case 0..<35:  // a use with an idempotency key, retried until it has an answer
            let key = UUID().uuidString
            let json = #"{"amount": \#(Int.random(in: 1...5)), "appId": "chaos", "description": "keyed use", "idempotencyKey": "\#(key)"}"#
            var ids: Set<String> = []
            for attempt in 0..<100 {
                if attempt > 0 { count("retries") }
                if let answer = try? await system.credits(.post, "/api/v1/credits/use", as: user, json: json), answer.status == .ok,
                    let id = answer.body["transaction"]?["id"]?.stringValue
                {
                    ids.insert(id)
                    // Sometimes the client repeats an acknowledged request: it must get the same transaction.
                    if Bool.random() { continue }
                    break
                }
                try await Chaos.sleep(0.05...0.2)
            }
            #expect(ids.count == 1, "one idempotency key answered with transactions \(ids)")
            if let id = ids.first {
                record.withLock {
                    $0.transactions[id] = user
                    $0.keyed.append((user, key, id))
                }
            }
            count("keyed uses")
        case 35..<55:  // a use without a key: one attempt
            let json = #"{"amount": \#(Int.random(in: 1...5)), "appId": "chaos", "description": "unkeyed use"}"#
            let answer = try? await system.credits(.post, "/api/v1/credits/use", as: user, json: json)
            let id = answer?.status == .ok ? answer?.body["transaction"]?["id"]?.stringValue : nil
            record.withLock {
                if let id { $0.transactions[id] = user }
                $0.tally(answer, acknowledged: id != nil, user: user, \.unkeyedUses)
            }
            count("unkeyed uses")
        case 55..<65:  // a refund from a service
            let json = #"{"userId": "\#(user)", "amount": \#(Int.random(in: 1...9)), "description": "chaos refund", "appId": "chaos", "idempotencyKey": "\#(UUID())"}"#
            let answer = try? await system.credits(.post, "/api/v1/internal/credits/refund", service: true, json: json)
            let id = answer?.status == .ok ? answer?.body["transaction"]?["id"]?.stringValue : nil
            record.withLock {
                if let id { $0.transactions[id] = user }
                $0.tally(answer, acknowledged: id != nil, user: user, \.refunds)
            }
            count("refunds")
        case 65..<75:  // a gift code
            let answer = try? await system.credits(.post, "/api/v1/gifts", as: user, json: #"{"credits": 5}"#)
            record.withLock {
                var created = false
                if answer?.status == .created, let id = answer?.body["id"]?.stringValue, let code = answer?.body["code"]?.stringValue {
                    $0.gifts.append((id, code))
                    created = true
                }
                $0.tally(answer, acknowledged: created, user: user, \.giftReservations)
            }
            count("gift creates")
        case 75..<83:  // someone redeems a code
            guard let gift = record.withLock({ $0.gifts.randomElement() }) else { return }
            if let answer = try? await system.credits(.post, "/api/v1/gifts/\(gift.code)/redeem", as: user), answer.status == .ok,
                answer.body["success"] == true
            {
                record.withLock { $0.redeemed.append(gift.id) }
            }
            count("gift redeems")
        case 83..<88:  // its creator cancels a code
            guard let gift = record.withLock({ $0.gifts.randomElement() }) else { return }
            let creator = try await TestDatabase.withClient(system.creditsDatabase) { client in
                try await client.query("SELECT creator_id FROM gifts.gift_codes WHERE id::text = \(gift.id)").decode(String.self)
                    .reduce(into: [String]()) { $0.append($1) }.first
            }
            if let creator, let answer = try? await system.credits(.delete, "/api/v1/gifts/\(gift.id)", as: creator), answer.status == .ok {
                record.withLock { $0.cancelled.append(gift.id) }
            }
            count("gift cancels")
        case 88..<96:  // a purchase paid through Stripe: the webhook is delivered until it is answered 200
            guard let purchase = try? await system.credits(.post, "/api/v1/credits/purchase", as: user, json: #"{"packageId": "\#(packageID)"}"#),
                purchase.status == .ok, let purchaseID = purchase.body["purchaseId"]?.stringValue,
                let intent = try? await system.credits(.get, "/api/v1/credits/purchase/\(purchaseID)", as: user).body["stripePaymentIntentId"]?
                    .stringValue
            else { return }
            let event = StripeStandIn.event(id: "evt_\(UUID().uuidString)", type: "payment_intent.succeeded", intent: intent, purchaseID: purchaseID)
            var delivered = false
            for attempt in 0..<100 {
                if attempt > 0 { count("webhook redeliveries") }
                let answer = try? await system.creditsCaller.send(
                    .post, "/api/v1/webhooks/stripe",
                    headers: [.init("Stripe-Signature")!: event.signature, .contentType: "application/json"], body: event.body)
                if answer?.status == .ok {
                    delivered = true
                    if Bool.random() { break }  // Stripe sometimes delivers an event twice
                    if attempt > 0 { break }
                }
                try await Chaos.sleep(0.05...0.2)
            }
            if delivered { record.withLock { $0.purchases.append(purchaseID) } }
            count("purchases")
        default:  // the recurring charge, with some subscriptions due
            try await TestDatabase.withClient(system.creditsDatabase) { client in
                try await client.query(
                    "UPDATE credits.sync_subscriptions SET next_charge_at = now() - interval '1 second' WHERE user_id = \(user) AND active")
            }
            _ = try? await system.credits(.post, "/api/v1/internal/sync/charge-recurring", service: true)
            count("charge runs")
        }
    }

    /// A reservation (keyed, retried until answered) resolved by a commit or a refund (each
    /// retried until answered), or left open; or a grant retried until answered.
    static func twoPhaseOperation(
        system: JourneyTests.System, record: Shared<Record>, user: String, grant: Bool, count: (String) -> Void
    ) async throws {
        /// Posts `json` to an internal route until an answer other than a 5xx or a broken
        /// connection comes back.
        func settled(_ path: String, _ json: String) async throws -> (status: HTTPResponse.Status, body: JSONValue)? {
            for attempt in 0..<100 {
                if attempt > 0 { count("retries") }
                if let answer = try? await system.credits(.post, "/api/v1/internal/credits/\(path)", service: true, json: json),
                    answer.status.code < 500
                {
                    return answer
                }
                try await Chaos.sleep(0.05...0.2)
            }
            return nil
        }
        if grant {
            let reference = UUID().uuidString
            let json = #"{"userId": "\#(user)", "amount": 3, "reason": "chaos", "referenceId": "\#(reference)"}"#
            if let answer = try await settled("grant", json), answer.status == .ok, let id = answer.body["transactionId"]?.stringValue {
                // A repeat of an acknowledged grant answers the same transaction.
                if Bool.random(), let again = try await settled("grant", json) {
                    #expect(again.body["transactionId"]?.stringValue == id && again.body["alreadyGranted"] == true, "\(again.body)")
                }
                record.withLock { $0.grants.append((user, reference, id)) }
            }
            count("grants")
            return
        }
        let key = UUID().uuidString
        let json = #"{"userId": "\#(user)", "amount": 4, "reason": "reserved:chaos", "idempotencyKey": "\#(key)"}"#
        guard let reserved = try await settled("reserve", json), reserved.status == .ok,
            let id = reserved.body["reservationId"]?.stringValue
        else { return }
        count("reserves")
        var resolved: String?
        switch Int.random(in: 0..<5) {
        case 0..<2:
            if let answer = try await settled("commit", #"{"reservationId": "\#(id)"}"#) {
                #expect(answer.status == .ok, "commit: \(answer.body)")
                if answer.status == .ok { resolved = "committed" }
            }
            count("commits")
        case 2..<4:
            if let answer = try await settled("refund-reservation", #"{"reservationId": "\#(id)"}"#) {
                #expect(answer.status == .ok, "refund: \(answer.body)")
                if answer.status == .ok { resolved = "refunded" }
            }
            count("reservation refunds")
        default:
            break  // left open
        }
        record.withLock { $0.reservations.append((user, key, id, resolved)) }
    }

    /// The audit, and every acknowledged operation exactly once.
    static func verify(_ record: Record, system: JourneyTests.System) async throws {
        let audit = try ChildProcess("mana-credits", ["audit"], environment: ["DATABASE_URL": JourneyTests.System.url(system.creditsDatabase)])
        #expect(try await audit.waitForExit(timeout: .seconds(60)) == 0, "audit: \(audit.output)")

        try await TestDatabase.withClient(system.creditsDatabase) { client in
            func rows<each T: PostgresDecodable>(_ query: PostgresQuery, _ type: (repeat each T).Type) async throws -> [(repeat each T)] {
                var result: [(repeat each T)] = []
                for try await row in try await client.query(query).decode((repeat each T).self) { result.append(row) }
                return result
            }
            // Every acknowledged transaction is stored, for its user.
            let stored = Dictionary(
                uniqueKeysWithValues: try await rows("SELECT id::text, user_id FROM credits.transactions", (String, String).self).map { ($0.0, $0.1) })
            let missing = record.transactions.filter { stored[$0.key] != $0.value }
            #expect(missing.isEmpty, "\(missing.count) acknowledged transactions are missing: \(missing.prefix(5))")

            // Each acknowledged idempotency key: exactly one transaction, the acknowledged one.
            let keyed = try await rows(
                "SELECT user_id, idempotency_key, id::text FROM credits.transactions WHERE idempotency_key IS NOT NULL", (String, String, String).self)
            let byKey = Dictionary(grouping: keyed) { "\($0.0)|\($0.1)" }
            for (user, key, id) in record.keyed {
                let found = byKey["\(user)|\(key)"] ?? []
                #expect(found.count == 1 && found.first?.2 == id, "key \(key) of \(user): \(found)")
            }

            // Operations without a key: at least every acknowledged one, at most those plus the uncertain ones.
            func check(_ name: String, _ counts: [String: (acked: Int, uncertain: Int)], _ query: (String) -> PostgresQuery) async throws {
                for (user, count) in counts {
                    let found = try await rows(query(user), Int.self).first ?? -1
                    #expect(
                        (count.acked...(count.acked + count.uncertain)).contains(found),
                        "\(name) of \(user): \(found) stored, \(count.acked) acknowledged, \(count.uncertain) uncertain")
                }
            }
            try await check("unkeyed uses", record.unkeyedUses) {
                "SELECT count(*)::int FROM credits.transactions WHERE user_id = \($0) AND type = 'usage' AND app_id = 'chaos' AND idempotency_key IS NULL"
            }
            try await check("refunds", record.refunds) {
                "SELECT count(*)::int FROM credits.transactions WHERE user_id = \($0) AND type = 'refund' AND description = 'chaos refund'"
            }
            try await check("gift reservations", record.giftReservations) {
                "SELECT count(*)::int FROM credits.transactions WHERE user_id = \($0) AND type = 'gift' AND amount < 0"
            }

            // Purchases: each acknowledged one completed and credited exactly once; no purchase twice.
            let credited = try await rows(
                "SELECT metadata->>'purchaseId', count(*)::int FROM credits.transactions WHERE type = 'purchase' GROUP BY 1", (String, Int).self)
            let creditedCount = Dictionary(uniqueKeysWithValues: credited.map { ($0.0, $0.1) })
            #expect(credited.allSatisfy { $0.1 == 1 }, "a purchase was credited twice: \(credited.filter { $0.1 != 1 })")
            for purchase in record.purchases {
                #expect(creditedCount[purchase.lowercased()] == 1, "purchase \(purchase) credited \(creditedCount[purchase.lowercased()] ?? 0) times")
            }
            let completed = try await rows("SELECT count(*)::int FROM credits.purchases WHERE status = 'completed'", Int.self).first ?? 0
            #expect(completed == credited.count)

            // Gifts: one reservation per code, at most one redemption and one refund each; the
            // acknowledged redemptions and cancellations are there.
            let perCode = try await rows(
                """
                SELECT g.id::text, g.status,
                    (SELECT count(*)::int FROM credits.transactions t WHERE t.id = g.reservation_transaction_id),
                    (SELECT count(*)::int FROM credits.transactions t WHERE t.metadata->>'giftCodeId' = g.id::text AND t.type = 'gift'),
                    (SELECT count(*)::int FROM credits.transactions t WHERE t.metadata->>'giftCodeId' = g.id::text AND t.type = 'refund')
                FROM gifts.gift_codes g
                """, (String, String, Int, Int, Int).self)
            let codes = Dictionary(uniqueKeysWithValues: perCode.map { ($0.0, $0) })
            for code in perCode {
                #expect(code.2 == 1 && code.3 <= 1 && code.4 <= 1 && code.3 + code.4 <= 1, "gift \(code)")
            }
            for id in record.gifts.map(\.id) { #expect(codes[id] != nil, "acknowledged gift \(id) is missing") }
            for id in record.redeemed { #expect(codes[id]?.1 == "depleted" && codes[id]?.3 == 1, "redeemed gift \(String(describing: codes[id]))") }
            for id in record.cancelled { #expect(codes[id]?.1 == "cancelled" && codes[id]?.4 == 1, "cancelled gift \(String(describing: codes[id]))") }

            // Reservations: one per acknowledged key, the acknowledged one, in the acknowledged state.
            let reservations = try await rows(
                "SELECT user_id, idempotency_key, id::text, status FROM credits.reservations WHERE idempotency_key IS NOT NULL",
                (String, String, String, String).self)
            let reservationsByKey = Dictionary(grouping: reservations) { "\($0.0)|\($0.1)" }
            for reservation in record.reservations {
                let found = reservationsByKey["\(reservation.user)|\(reservation.key)"] ?? []
                #expect(found.count == 1 && found.first?.2 == reservation.id, "reservation \(reservation.key): \(found)")
                if let resolved = reservation.resolved { #expect(found.first?.3 == resolved, "reservation \(reservation.id): \(found)") }
            }
            // Grants: exactly one ledger row per (user, referenceId), the acknowledged one.
            let grants = try await rows(
                "SELECT user_id, system_key, id::text FROM credits.transactions WHERE type = 'grant'", (String, String, String).self)
            let grantsByKey = Dictionary(grouping: grants) { "\($0.0)|\($0.1)" }
            for grant in record.grants {
                let found = grantsByKey["\(grant.user)|grant:\(grant.reference)"] ?? []
                #expect(found.count == 1 && found.first?.2 == grant.id, "grant \(grant.reference): \(found)")
            }
        }
    }
}
