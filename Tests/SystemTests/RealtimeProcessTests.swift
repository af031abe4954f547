import AsyncHTTPClient
import Foundation
import HTTPKit
import Hummingbird
import SharedAuth
import Testing
import TestSupport

/// mana-sync processes with real-time clients: fan-out across replicas, many idle sockets.
@Suite(.heavy, .timeLimit(.minutes(15))) struct RealtimeProcessTests {
    static let serviceKey = "system-test-key"

    /// A signing key with its JWKS in a file, and a mana-credits stand-in that says "active".
    struct Neighbours: Sendable {
        let key: DevelopmentSigningKey
        let jwksURL: String
        let credits: StandInServer
        let database: DatabaseURL

        static func make() async throws -> Neighbours {
            let key = try DevelopmentSigningKey(kid: "system")
            let path = FileManager.default.temporaryDirectory.appendingPathComponent("jwks-\(UUID().uuidString).json").path
            try key.jwksDocument().write(to: URL(fileURLWithPath: path))
            let credits = try StandInServer { router in
                router.get("api/v1/internal/sync/status/:userId") { _, _ -> Response in .json(#"{"active":true}"#) }
                router.addNoMemberships()
            }
            try await credits.start()
            let database = try await PostgresCluster.shared.createDatabase(prefix: "realtime")
            return Neighbours(key: key, jwksURL: "file://\(path)", credits: credits, database: database)
        }

        func startSync(_ extra: [String: String] = [:]) async throws -> (ChildProcess, Int) {
            let port = try FreePort.find()
            let process = try ChildProcess(
                "mana-sync", ["serve"],
                environment: [
                    "PORT": String(port), "HOST": "127.0.0.1", "LOG_LEVEL": "warning", "JWKS_URL": jwksURL,
                    "MANA_CREDITS_URL": credits.baseURL, "MEMBERSHIPS_URL": credits.baseURL, "MANA_SERVICE_KEY": RealtimeProcessTests.serviceKey,
                    "DATABASE_URL": "postgresql://mana@127.0.0.1:\(database.port)/\(database.database)?sslmode=disable",
                ].merging(extra) { _, new in new })
            #expect(await process.waitUntilReady(port: port), "mana-sync on \(port) never became ready")
            return (process, port)
        }
    }

    @Test func aPushToOneReplicaReachesClientsOfTheOther() async throws {
        let neighbours = try await Neighbours.make()
        let (first, firstPort) = try await neighbours.startSync()
        let (second, secondPort) = try await neighbours.startSync()
        let token = try await neighbours.key.mint(userID: "roamer")
        let socket = try await WSProbe.authenticated("ws://127.0.0.1:\(secondPort)/ws", token: token, clientID: "laptop")
        let stream = SSEProbe(
            url: "http://127.0.0.1:\(secondPort)/sync/todo/stream?collections=tasks",
            headers: [("Authorization", "Bearer \(token)"), ("X-Client-Id", "laptop")])
        #expect(await stream.waitFor("changes").count == 1)  // the (empty) catch-up

        let phone = HTTPCaller(port: firstPort)
        let change: JSONValue = ["table": "tasks", "id": "t1", "op": "insert", "data": ["title": "milk"]]
        let pushed = try await phone.send(
            .post, "/sync/todo", headers: [.authorization: "Bearer \(token)", .contentType: "application/json"],
            body: String(decoding: try JSONEncoder().encode(["clientId": "phone", "changes": [change]] as JSONValue), as: UTF8.self))
        #expect(pushed.status == .ok)
        await phone.shutdown()

        #expect(await socket.waitFor { $0["type"] == "sync-available" } == ["type": "sync-available", "appId": "todo", "tables": ["tasks"]])
        let live = await stream.waitFor("changes", count: 2)
        #expect(live.last?.data["changes"]?.withoutEventIDs == [change])

        // Both stop promptly on SIGTERM although a socket and a stream are still open; every
        // socket, authenticated or still silent, is told why (1001) before the process ends.
        let silent = WSProbe(url: "ws://127.0.0.1:\(secondPort)/ws")
        let metrics = HTTPCaller(port: secondPort)
        try await eventually { (try? await metrics.sendText(.get, "/metrics").text.contains("sync_ws_upgrades_total 2")) == true }
        await metrics.shutdown()
        let start = ContinuousClock.now
        for process in [first, second] { process.signal(SIGTERM) }
        for process in [first, second] {
            let status = try await process.waitForExit(timeout: .seconds(15))
            #expect(status == 0, "exit \(String(describing: status)): \(process.output)")
        }
        #expect(ContinuousClock.now - start < .seconds(15))
        #expect(await socket.closeFrame(within: .seconds(5))??.closeCode == .goingAway)
        #expect(await silent.closeFrame(within: .seconds(5))??.closeCode == .goingAway)
        await socket.close()
        await stream.close()
        await neighbours.credits.stop()
    }

    @Test func twoThousandIdleConnectionsStayConnected() async throws {
        let neighbours = try await Neighbours.make()
        let (process, port) = try await neighbours.startSync()
        let users = 100, perUser = 20
        var minted: [String] = []
        for user in 0..<users { minted.append(try await neighbours.key.mint(userID: "idle-\(user)")) }
        let tokens = minted
        let before = Self.residentKB(process.pid)
        var sockets: [WSProbe] = []
        for user in 0..<users {
            let token = tokens[user]
            let batch = try await withThrowingTaskGroup(of: WSProbe.self) { group in
                for _ in 0..<perUser {
                    // 90 s: the whole suite runs beside this test on two cores (import and chaos
                    // children included), and a connection refused by a full listen backlog is
                    // retried by the kernel after 1, 2, 4, 8, 16 and 32 s; this test is about
                    // holding 2,000 sockets, not auth latency.
                    group.addTask { try await WSProbe.authenticated("ws://127.0.0.1:\(port)/ws", token: token, within: .seconds(90)) }
                }
                return try await group.reduce(into: [WSProbe]()) { $0.append($1) }
            }
            sockets += batch
        }
        let health = HTTPCaller(port: port)
        #expect(try await health.send(.get, "/health").body["connections"] == 2_000)
        try await Task.sleep(for: .seconds(3))
        let after = Self.residentKB(process.pid)
        let perConnection = Double(after - before) / 2_000
        print("2,000 idle WebSocket connections: RSS \(before) KB → \(after) KB, \(String(format: "%.1f", perConnection)) KB per connection")
        let status = try await health.send(.get, "/health").body
        #expect(status["connections"] == 2_000 && status["users"] == .number(Double(users)))
        #expect(sockets.allSatisfy { $0.received.count == 1 })  // auth-ok, nothing else, none closed

        // Still live: a push reaches all 20 sockets of its user.
        let change: JSONValue = ["table": "t", "id": "1", "op": "insert", "data": [:]]
        let pushed = try await health.send(
            .post, "/sync/app", headers: [.authorization: "Bearer \(tokens[7])", .contentType: "application/json"],
            body: String(decoding: try JSONEncoder().encode(["clientId": "x", "changes": [change]] as JSONValue), as: UTF8.self))
        #expect(pushed.status == .ok)
        let notified = sockets[(7 * perUser)..<(8 * perUser)]
        for socket in notified { #expect(await socket.waitFor { $0["type"] == "sync-available" } != nil) }

        for socket in sockets { socket.send(["type": "bye"]) }
        await withTaskGroup(of: Void.self) { group in
            for socket in sockets { group.addTask { await socket.close() } }
        }
        try await eventually(within: .seconds(20)) { (try? await health.send(.get, "/health").body["connections"]) == 0 }
        await health.shutdown()
        process.signal(SIGTERM)
        #expect(try await process.waitForExit(timeout: .seconds(15)) == 0)
        await neighbours.credits.stop()
    }

    /// A peer that stops reading and never answers the close frame must not hold up a
    /// rolling deploy: SIGTERM ends the process within `SHUTDOWN_TIMEOUT` (plus the backstop).
    @Test func sigtermEndsWithinTheShutdownBoundDespiteASilentWebSocket() async throws {
        let neighbours = try await Neighbours.make()
        let (process, port) = try await neighbours.startSync(["SHUTDOWN_TIMEOUT": "2"])
        let token = try await neighbours.key.mint(userID: "silent")
        let stalled = try await StalledWebSocket.connect(port: port, path: "/ws", token: token)
        defer { stalled.close() }
        // Something queued for it, so the server's close frame sits behind unread data.
        let caller = HTTPCaller(port: port)
        for index in 0..<20 {
            let change: JSONValue = ["table": "t", "id": .string("r\(index)"), "op": "insert", "data": ["text": .string(String(repeating: "x", count: 2000))]]
            _ = try await caller.send(
                .post, "/sync/app", headers: [.authorization: "Bearer \(token)", .contentType: "application/json"],
                body: String(decoding: try JSONEncoder().encode(["clientId": "other", "changes": [change]] as JSONValue), as: UTF8.self))
        }
        await caller.shutdown()
        let start = ContinuousClock.now
        process.signal(SIGTERM)
        let status = try await process.waitForExit(timeout: .seconds(15))
        let took = ContinuousClock.now - start
        print("SIGTERM with a silent WebSocket: exited \(String(describing: status)) after \(took)")
        #expect(status == 0, "mana-sync exit \(String(describing: status)): \(process.output.suffix(3000))")
        #expect(took < .seconds(2 + 2 + 2), "shutdown took \(took)")
        await neighbours.credits.stop()
    }

    /// The resident set size of a process in KB.
    static func residentKB(_ pid: pid_t) -> Int {
        let status = (try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)) ?? ""
        let line = status.split(separator: "\n").first { $0.hasPrefix("VmRSS:") } ?? ""
        return Int(line.split(separator: " ").dropFirst().first ?? "") ?? 0
    }
}
