import Foundation
import HTTPKit
import Hummingbird
import SharedAuth
import Testing
import TestSupport

@testable import ManaSync

/// Attacks on mana-sync from the security review, each reproduced against the service.
@Suite(.timeLimit(.minutes(3))) struct SecurityTests {
    static let epoch = "1970-01-01T00:00:00.000000Z"

    /// A token mana-auth signed for another purpose (another audience, another issuer, or
    /// none) must not open sync, even when the deployment sets no JWT variables.
    @Test func tokensForAnotherAudienceOrIssuerAreRefusedByDefault() async throws {
        try await SyncHarness.run { (h: SyncHarness) async throws in
            let pull = "/sync/todo/pull?collection=t&since=\(Self.epoch)"
            let good = try await h.key.mint(userID: "mallory")
            #expect(try await h.caller.send(.get, pull, headers: [.authorization: "Bearer \(good)"]).status == .ok)
            for token in [
                try await h.key.mint(userID: "mallory", audience: "another-app"),
                try await h.key.mint(userID: "mallory", audience: nil),
                try await h.key.mint(userID: "mallory", issuer: "https://evil.example"),
                try await h.key.mint(userID: "mallory", issuer: nil),
            ] {
                let answer = try await h.caller.send(.get, pull, headers: [.authorization: "Bearer \(token)"])
                #expect(answer.status == .unauthorized, "\(answer.body)")
            }
        }
    }

    @Test func productionRefusesToStartWithoutTheTokenIssuer() {
        var reader = ConfigReader(environment: [
            "MANA_ENV": "production", "MANA_SERVICE_KEY": String(repeating: "k", count: 40),
            "DATABASE_URL": "postgresql://mana@db.internal/mana_sync?sslmode=verify-full",
        ])
        _ = SyncConfiguration(reading: &reader)
        #expect(reader.problems.contains { $0.hasPrefix("JWT_ISSUER") }, "\(reader.problems)")

        var configured = ConfigReader(environment: ["MANA_AUTH_URL": "https://auth.mana.how"])
        let configuration = SyncConfiguration(reading: &configured)
        #expect(configuration.auth.verifier.issuer == "https://auth.mana.how")
        #expect(configuration.auth.verifier.audience == "mana")
        #expect(configuration.auth.jwksURL == "https://auth.mana.how/api/auth/jwks")
    }

    // MARK: Connection floods

    /// One token could open any number of sockets, each woken by every push of that user.
    @Test func aUserBeyondTheWebSocketCapLosesTheOldestSocket() async throws {
        try await SyncHarness.run(realtime: { $0.webSocketsPerUser = 3 }) { (h: SyncHarness) async throws in
            let token = try await h.token("flooder")
            var sockets: [WSProbe] = []
            for index in 0..<3 { sockets.append(try await WSProbe.authenticated(h.ws("/ws"), token: token, clientID: "c\(index)")) }
            let fourth = try await WSProbe.authenticated(h.ws("/ws"), token: token, clientID: "c3")
            let closed = await sockets[0].closeFrame(within: .seconds(10))
            #expect(closed??.closeCode == .policyViolation && closed??.reason == "too many connections", "\(String(describing: closed))")
            #expect(try await h.caller.send(.get, "/health").body["connections"] == 3)
            // The others stay and still hear pushes.
            #expect(try await h.push("app", as: "flooder", client: "other", changes: [Changes.insert("t", "1", [:])]).status == .ok)
            for socket in sockets.dropFirst() + [fourth] { #expect(await socket.waitFor { $0["type"] == "sync-available" } != nil) }
            for socket in sockets + [fourth] { await socket.close() }
        }
    }

    @Test func aUserBeyondTheStreamCapLosesTheOldestStream() async throws {
        try await SyncHarness.run(realtime: { $0.streamsPerUser = 2 }) { (h: SyncHarness) async throws in
            let token = try await h.token("streamer")
            func open() -> SSEProbe {
                SSEProbe(url: h.caller.baseURL + "/sync/app/stream?collections=t", headers: [("Authorization", "Bearer \(token)")])
            }
            let first = open()
            _ = await first.waitFor("changes")
            let second = open()
            _ = await second.waitFor("changes")
            #expect(!(await first.ended(within: .milliseconds(300))))
            let third = open()
            _ = await third.waitFor("changes")
            #expect(await first.ended(within: .seconds(10)))
            #expect(!(await second.ended(within: .milliseconds(300))))
            for stream in [first, second, third] { await stream.close() }
        }
    }

    /// A push wakes every stream of the user; streams of one (user, app) at the same cursor
    /// share one read of the new page instead of running the same query each.
    @Test func streamsOfOneUserShareOneReadPerNotice() async throws {
        try await SyncHarness.run { (h: SyncHarness) async throws in
            let token = try await h.token("tabs")
            // The listener's first LISTEN tells every stream open then to read: on a loaded
            // machine that can come after the streams below opened, doubling their reads.
            try await h.listening()
            let streams = (0..<5).map { index in
                SSEProbe(
                    url: h.caller.baseURL + "/sync/app/stream?collections=t",
                    headers: [("Authorization", "Bearer \(token)"), ("X-Client-Id", "tab-\(index)")])
            }
            for stream in streams { _ = await stream.waitFor("changes") }
            #expect(try await h.push("app", as: "tabs", client: "tab-0", changes: [Changes.insert("t", "x", ["v": 1])]).status == .ok)
            for (index, stream) in streams.enumerated() where index > 0 {
                let events = await stream.waitFor("changes", count: 2)
                #expect(events.last?.data["changes"]?.array?.first?["id"] == "x")
            }
            let metrics = try await h.caller.sendText(.get, "/metrics").text
            // tab-0 pushed it: its stream learns nothing new, but it may read (and share) too.
            #expect(metrics.contains(#"sync_sse_reads_total{shared="false"} 1"#), "\(metrics)")
            #expect(metrics.contains(#"sync_sse_reads_total{shared="true"} 4"#) || metrics.contains(#"sync_sse_reads_total{shared="true"} 3"#))
            #expect(streams[0].received.filter { $0.name == "changes" }.count == 1)
            for stream in streams { await stream.close() }
        }
    }

    // MARK: Expired tokens and lapsed subscriptions on open connections

    @Test func socketsAndStreamsEndWhenTheirTokenExpires() async throws {
        try await SyncHarness.run(authEnvironment: ["JWT_LEEWAY": "0"]) { (h: SyncHarness) async throws in
            let token = try await h.key.mint(userID: "brief", lifetime: .seconds(3))
            let socket = try await WSProbe.authenticated(h.ws("/ws"), token: token)
            let stream = SSEProbe(url: h.caller.baseURL + "/sync/app/stream?collections=t", headers: [("Authorization", "Bearer \(token)")])
            _ = await stream.waitFor("changes")
            let closed = await socket.closeFrame(within: .seconds(10))
            #expect(closed??.closeCode == .policyViolation && closed??.reason == "token expired", "\(String(describing: closed))")
            #expect(await stream.ended(within: .seconds(10)))
        }
    }

    @Test func anOpenStreamEndsWhenCloudSyncStops() async throws {
        try await SyncHarness.run(realtime: { $0.streamRecheck = .seconds(1) }) { (h: SyncHarness) async throws in
            let token = try await h.token("lapsing")
            let stream = SSEProbe(url: h.caller.baseURL + "/sync/app/stream?collections=t", headers: [("Authorization", "Bearer \(token)")])
            _ = await stream.waitFor("changes")
            #expect(!(await stream.ended(within: .seconds(2))))
            h.credits.setActive("lapsing", false)
            _ = try await h.call(.post, "/internal/billing/invalidate/lapsing", as: nil, headers: [.serviceKey: SyncHarness.serviceKey])
            #expect(await stream.ended(within: .seconds(10)))
        }
    }
}
