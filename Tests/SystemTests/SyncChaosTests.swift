import Foundation
import HTTPKit
import Hummingbird
import PostgresNIO
import Synchronization
import Testing
import TestSupport

/// Many clients push and pull with retries while mana-sync is killed and restarted and its
/// PostgreSQL connections are terminated; afterwards every client that drains its pulls holds
/// the same state, field for field, as a reference LWW merge of everything acknowledged.
@Suite(.heavy, .timeLimit(.minutes(20))) struct SyncChaosTests {
    static let tables = ["notes", "tasks"]
    static let users = ["alice", "bob"]

    /// One field value with its client timestamp (microseconds, unique per run).
    struct Stamped: Equatable, Sendable {
        let value: String
        let at: Int64
    }

    /// table → record → field → value: a client's local copy.
    typealias State = [String: [String: [String: Stamped]]]

    /// Field-level last-write-wins: the later timestamp wins; on equal ones the later change.
    static func merge(_ state: inout State, table: String, id: String, field: String, _ value: Stamped) {
        if let current = state[table]?[id]?[field], current.at > value.at { return }
        state[table, default: [:]][id, default: [:]][field] = value
    }

    /// A browser tab: pushes its own edits (retrying each with its idempotency key until it is
    /// acknowledged) and pulls everyone else's.
    final class Client: Sendable {
        let user: String
        let id: String
        let token: String
        let state = Shared<State>([:])
        let cursors = Shared<[String: String]>([:])

        init(user: String, id: String, token: String) {
            self.user = user
            self.id = id
            self.token = token
        }

        /// Pushes a batch of edits until it is answered 200; returns them.
        func push(_ caller: () -> HTTPCaller, clock: Clock, counts: Shared<[String: Int]>) async throws -> [(String, String, String, Stamped)] {
            var edits: [(String, String, String, Stamped)] = []
            for _ in 0..<Int.random(in: 1...6) {
                let value = Stamped(value: "\(id)-\(UUID().uuidString.prefix(6))", at: clock.next())
                edits.append((SyncChaosTests.tables.randomElement()!, "r\(Int.random(in: 0..<12))", ["a", "b", "c"].randomElement()!, value))
            }
            let changes: [JSONValue] = edits.map { table, record, field, value in
                [
                    "table": .string(table), "id": .string(record), "op": "update",
                    "fields": [field: ["value": .string(value.value), "updatedAt": .string(Timestamp.format(microseconds: value.at))]],
                ]
            }
            let body: JSONValue = ["clientId": .string(id), "since": .string(Timestamp.iso8601(Date())), "changes": .array(changes)]
            let text = String(decoding: try JSONEncoder().encode(body), as: UTF8.self)
            let key = UUID().uuidString
            var acknowledged = false
            for attempt in 0..<200 {
                if attempt > 0 { counts.withLock { $0["push retries", default: 0] += 1 } }
                let answer = try? await caller().send(
                    .post, "/sync/chaos",
                    headers: [.authorization: "Bearer \(token)", .contentType: "application/json", .init("Idempotency-Key")!: key], body: text)
                if answer?.status == .ok {
                    acknowledged = true
                    // Sometimes the answer is "lost" and the client sends the same push again.
                    if Int.random(in: 0..<5) > 0 { break }
                    counts.withLock { $0["repeated pushes", default: 0] += 1 }
                    continue
                }
                try await Chaos.sleep(0.05...0.2)
            }
            guard acknowledged else {
                Issue.record("a push was never acknowledged")
                return []
            }
            state.withLock { state in
                for (table, record, field, value) in edits { SyncChaosTests.merge(&state, table: table, id: record, field: field, value) }
            }
            return edits
        }

        /// Pulls one table until `hasMore` is false; false when a request failed.
        func pull(_ table: String, caller: HTTPCaller) async -> Bool {
            while true {
                let since = cursors.withLock { $0[table] } ?? "1970-01-01T00:00:00Z"
                let query = "collection=\(table)&since=\(since.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? since)&limit=50"
                guard
                    let answer = try? await caller.send(
                        .get, "/sync/chaos/pull?\(query)", headers: [.authorization: "Bearer \(token)", .init("X-Client-Id")!: id]),
                    answer.status == .ok, let next = answer.body["syncedUntil"]?.stringValue
                else { return false }
                state.withLock { state in
                    for change in answer.body["serverChanges"]?.array ?? [] {
                        guard let record = change["id"]?.stringValue, case .object(let fields)? = change["fields"] else { continue }
                        for (field, stamped) in fields {
                            guard let value = stamped["value"]?.stringValue, let at = stamped["updatedAt"]?.stringValue.flatMap(Timestamp.parseMicroseconds)
                            else { continue }
                            SyncChaosTests.merge(&state, table: table, id: record, field: field, Stamped(value: value, at: at))
                        }
                    }
                }
                cursors.withLock { $0[table] = next }
                if answer.body["hasMore"] != true { return true }
            }
        }
    }

    /// Unique client timestamps spread over a day, handed out in random order, so late
    /// arrivals often lose to earlier pushes.
    final class Clock: Sendable {
        private let used = Mutex<Set<Int64>>([])
        private let base = Timestamp.parseMicroseconds("2026-06-01T00:00:00Z")!

        func next() -> Int64 {
            used.withLock { used in
                while true {
                    let candidate = base + Int64.random(in: 0..<86_400_000_000)
                    if used.insert(candidate).inserted { return candidate }
                }
            }
        }
    }

    @Test func clientsConvergeToTheLWWMergeAfterKillsAndTerminatedConnections() async throws {
        let neighbours = try await RealtimeProcessTests.Neighbours.make()
        let port = try FreePort.find()
        let environment = [
            "PORT": String(port), "HOST": "127.0.0.1", "LOG_LEVEL": "warning", "JWKS_URL": neighbours.jwksURL,
            "MANA_CREDITS_URL": neighbours.credits.baseURL, "MEMBERSHIPS_URL": neighbours.credits.baseURL,
            "MANA_SERVICE_KEY": RealtimeProcessTests.serviceKey,
            "DATABASE_URL": "postgresql://mana@127.0.0.1:\(neighbours.database.port)/\(neighbours.database.database)?sslmode=disable",
        ]
        let first = try ChildProcess("mana-sync", ["serve"], environment: environment)
        let sync = Shared<ChildProcess?>(first)
        try #require(await first.waitUntilReady(port: port), "mana-sync never became ready")
        let callers = Shared<HTTPCaller>(HTTPCaller(port: port))
        let caller: @Sendable () -> HTTPCaller = { callers.withLock { $0 } }

        var tabs: [Client] = []
        for index in 0..<Chaos.workers {
            let user = Self.users[index % Self.users.count]
            tabs.append(Client(user: user, id: "tab-\(index)", token: try await neighbours.key.mint(userID: user)))
        }
        let clients = tabs
        let clock = Clock()
        let started = ContinuousClock.now
        let acknowledged = Shared<[String: [(String, String, String, Stamped)]]>([:])
        let counts = Shared<[String: Int]>([:])
        let terminated = Shared(0)

        try await Chaos.run(
            workers: clients.count,
            { index, stop in
                let client = clients[index]
                while !stop.isSet {
                    if Int.random(in: 0..<10) < 7 {
                        let edits = try await client.push(caller, clock: clock, counts: counts)
                        acknowledged.withLock { $0[client.user, default: []] += edits }
                        counts.withLock { $0["pushes", default: 0] += 1 }
                    } else {
                        _ = await client.pull(Self.tables.randomElement()!, caller: caller())
                        counts.withLock { $0["pulls", default: 0] += 1 }
                    }
                }
            },
            during: {
                try await withThrowingTaskGroup(of: Void.self) { group in
                    let done = Chaos.Flag()
                    // Terminates every backend of mana-sync's database now and then (its pool
                    // and its LISTEN connection).
                    group.addTask {
                        while !done.isSet {
                            try await Chaos.sleep(0.3...0.8)
                            let count = try await TestDatabase.withClient(neighbours.database) { client in
                                try await client.query(
                                    """
                                    SELECT count(pg_terminate_backend(pid))::int FROM pg_stat_activity
                                    WHERE datname = \(neighbours.database.database) AND pid <> pg_backend_pid()
                                    """
                                ).decode(Int.self).reduce(0, +)
                            }
                            terminated.withLock { $0 += count }
                        }
                    }
                    for _ in 0..<Chaos.kills {
                        try await Chaos.sleep(Chaos.pause)
                        let process = sync.withLock { $0 }
                        process?.signal(SIGKILL)
                        _ = try await process?.waitForExit(timeout: .seconds(10))
                        try await Chaos.sleep(0.1...0.5)
                        let restarted = try ChildProcess("mana-sync", ["serve"], environment: environment)
                        sync.withLock { $0 = restarted }
                        // A fresh connection pool: the old one only holds dead connections.
                        let old = callers.withLock { callers in
                            defer { callers = HTTPCaller(port: port) }
                            return callers
                        }
                        await old.shutdown()
                        // Comes up while the terminator keeps ending its connections (migrations too).
                        #expect(await restarted.waitUntilReady(port: port), "restarted mana-sync never became ready")
                    }
                    try await Chaos.sleep(Chaos.pause)
                    // Enough acknowledged edits to mean something, however loaded the machine.
                    try await Chaos.until(within: .seconds(90)) {
                        acknowledged.withLock { $0.values.map(\.count).reduce(0, +) } > 30
                    }
                    done.set()
                    try await group.waitForAll()
                }
            })

        print("sync chaos: chaos over after \(ContinuousClock.now - started)")
        // Quiet now: every client drains its pulls; a new device pulls everything.
        let fresh = clients.map { Client(user: $0.user, id: "fresh-\($0.id)", token: $0.token) }
        for client in clients + fresh {
            for table in Self.tables {
                var drained = false
                for _ in 0..<50 where !drained {
                    drained = await client.pull(table, caller: caller())
                    if !drained { try await Task.sleep(for: .milliseconds(200)) }
                }
                #expect(drained, "\(client.id) could not drain \(table)")
            }
        }
        print("sync chaos: drained after \(ContinuousClock.now - started)")
        var reference: [String: State] = [:]
        for (user, edits) in acknowledged.withLock({ $0 }) {
            for (table, record, field, value) in edits { Self.merge(&reference[user, default: [:]], table: table, id: record, field: field, value) }
        }
        let fields = reference.values.flatMap { $0.values.flatMap { $0.values.map(\.count) } }.reduce(0, +)
        print(
            "sync chaos: \(Chaos.kills) kills, \(terminated.withLock { $0 }) backends terminated, "
                + "\(counts.withLock { $0 }.sorted { $0.key < $1.key }), \(fields) fields in the reference")
        #expect(fields > 10, "too little was acknowledged to mean anything")
        for client in clients + fresh {
            let state = client.state.withLock { $0 }
            let expected = reference[client.user] ?? [:]
            var differences = 0
            for table in Set(state.keys).union(expected.keys) {
                for record in Set(state[table, default: [:]].keys).union(expected[table, default: [:]].keys) {
                    if state[table]?[record] != expected[table]?[record] { differences += 1 }
                }
            }
            #expect(differences == 0, "\(client.id) of \(client.user) differs from the LWW reference in \(differences) records")
        }

        await caller().shutdown()
        let process = sync.withLock { $0 }
        process?.signal(SIGTERM)
        let status = try await process?.waitForExit(timeout: .seconds(15))
        #expect(status == 0, "mana-sync exit \(String(describing: status)): \(process?.output.suffix(3000) ?? "")")
        await neighbours.credits.stop()
    }
}
