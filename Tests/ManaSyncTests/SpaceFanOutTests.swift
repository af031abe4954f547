import Foundation
import HTTPKit
import TestSupport
import Synchronization
import Testing

@testable import ManaSync

/// A push into a space reaches every member listening, on every replica (spaces.md section
/// 9, "Fan-out"); a member who leaves stops hearing of it and stops reading it.
@Suite(.timeLimit(.minutes(10))) struct SpaceFanOutTests {
    static let syncAvailable: JSONValue = ["type": "sync-available", "appId": "cal", "tables": ["events"]]

    @Test func membersOnAnotherReplicaHearOfAPushIntoTheirSpace() async throws {
        try await SyncHarness.run { h in
            h.auth.set("u_a", ["org_fam": "owner"])
            h.auth.set("u_b", ["org_fam": "member"])
            h.auth.set("u_v", ["org_fam": "viewer"])
            h.auth.set("u_x", ["org_other": "owner"])
            let metrics = ServiceMetrics()
            let hub = RealtimeHub(metrics: metrics)
            try await h.withReplica(hub: hub) { second in
                let base = second.baseURL.replacingOccurrences(of: "http://", with: "ws://")
                func socket(_ user: String, _ client: String, path: String = "/ws") async throws -> WSProbe {
                    try await WSProbe.authenticated(base + path, token: try await h.token(user), clientID: client)
                }
                let member = try await socket("u_b", "b1")
                let viewer = try await socket("u_v", "v1", path: "/ws/cal")
                let stranger = try await socket("u_x", "x1")
                let authorsOtherDevice = try await socket("u_a", "a2")
                let authorsPushingDevice = try await socket("u_a", "a1")
                let stream = SSEProbe(
                    url: second.baseURL + "/sync/cal/stream?collections=events",
                    headers: [("Authorization", "Bearer \(try await h.token("u_b"))"), ("X-Client-Id", "b1")])
                #expect(await stream.waitFor("changes").count == 1)  // the (empty) catch-up

                // Pushed on the first replica, heard on the second.
                let clock = ContinuousClock()
                #expect(try await h.push("cal", as: "u_a", client: "a1", changes: [SpaceReadTests.insert("zoo", space: "org_fam")]).status == .ok)
                let pushed = clock.now
                for listener in [member, viewer, authorsOtherDevice] {
                    #expect(await listener.waitFor { $0["type"] == "sync-available" } == Self.syncAvailable)
                }
                print("members heard of the push on the other replica \(clock.now - pushed) after its answer")
                let live = await stream.waitFor("changes", count: 2)
                #expect(live.last?.data["changes"]?.array?.compactMap { $0["id"]?.stringValue } == ["zoo"])
                #expect(live.last?.data["changes"]?.array?.first?["spaceId"] == "org_fam")
                // A push outside the space tells the author's devices only; then nothing else
                // is queued for anyone who should not hear of the first.
                #expect(try await h.push("cal", as: "u_a", client: "a1", changes: [SpaceReadTests.insert("own", space: nil)]).status == .ok)
                #expect(await authorsOtherDevice.waitFor { _ in authorsOtherDevice.received.count >= 3 } != nil)
                #expect(stranger.received == [["type": "auth-ok"]])
                #expect(authorsPushingDevice.received == [["type": "auth-ok"]])
                #expect(member.received.count == 2 && viewer.received.count == 2)
                // One push into the space, two members told on this replica.
                let fanOut = metrics.exposition().split(separator: "\n").filter { $0.hasPrefix("sync_space_fanout_users_") && !$0.contains("bucket") }
                #expect(Set(fanOut) == ["sync_space_fanout_users_count 1", "sync_space_fanout_users_sum 2.0"], "\(fanOut)")

                // u_b leaves: after the invalidation (sent to the first replica) the second one
                // stops telling it, and its open stream stops reading the space.
                h.auth.set("u_b", [:])
                try await h.invalidateMemberships(["u_b"])
                try await eventually { hub.spaces(of: "u_b").isEmpty }
                #expect(try await h.push("cal", as: "u_a", client: "a1", changes: [SpaceReadTests.insert("after", space: "org_fam")]).status == .ok)
                #expect(await viewer.waitFor { _ in viewer.received.count >= 3 } != nil)
                #expect(try await h.push("cal", as: "u_b", client: "b2", changes: [SpaceReadTests.insert("mine", space: nil)]).status == .ok)
                #expect(await member.waitFor { _ in member.received.count >= 3 } != nil)
                let afterLeaving = await stream.waitFor("changes", count: 3)
                #expect(afterLeaving.last?.data["changes"]?.array?.compactMap { $0["id"]?.stringValue } == ["mine"])
                #expect(member.received.count == 3)  // the own push only

                for probe in [member, viewer, stranger, authorsOtherDevice, authorsPushingDevice] { await probe.close() }
                await stream.close()
            }
        }
    }

    @Test func aMemberWhoseLookupFailedAtConnectIsResolvedAfterTheFailurePause() async throws {
        try await SyncHarness.run(memberships: { $0.failureTTL = .milliseconds(300) }) { h in
            h.auth.set("u_a", ["org_fam": "owner"])
            h.auth.set("u_b", ["org_fam": "member"])
            h.auth.fail(true)
            let member = try await WSProbe.authenticated(h.ws("/ws"), token: try await h.token("u_b"), clientID: "b1")
            h.auth.fail(false)
            // The periodic refresh is a minute away: only the retry can let the member hear it.
            try await eventually(within: .seconds(10)) {
                _ = try await h.push("cal", as: "u_a", client: "a1", changes: [SpaceReadTests.insert(UUID().uuidString, space: "org_fam")])
                return await member.waitFor(within: .milliseconds(200)) { $0["type"] == "sync-available" } != nil
            }
            await member.close()
        }
    }

    @Test func theHubIndexesSpacesOfListeningUsersOnly() async {
        let hub = RealtimeHub(metrics: ServiceMetrics())
        // Nobody listening: an answer is not kept.
        hub.setSpaces(["org_fam"], of: "u_b", ticket: hub.spaceTicket())
        #expect(hub.spaces(of: "u_b") == [])
        let sink = CollectingSink()
        let connection = hub.connect(userID: "u_b", appID: nil, clientID: "b1", sink: sink)!
        let older = hub.spaceTicket()
        let newer = hub.spaceTicket()
        // The spaces a user reads leave out its personal ones (ReadScope, which the fan-out uses).
        let read = ReadScope(.fresh(Memberships(roles: ["org_new": "member", "_personal:u_b": "owner"])))
        #expect(read.spaces == ["org_new"])
        hub.setSpaces(Set(read.spaces), of: "u_b", ticket: newer)
        // An answer resolved earlier but arriving later does not win.
        hub.setSpaces(["org_old"], of: "u_b", ticket: older)
        #expect(hub.spaces(of: "u_b") == ["org_new"])
        hub.publish(PushNotice(userID: "u_a", appID: "cal", tables: ["events"], clientID: "a1", spaces: ["org_new"]))
        hub.publish(PushNotice(userID: "u_a", appID: "cal", tables: ["events"], clientID: "a1", spaces: ["org_old"]))
        hub.disconnect(connection)
        #expect(hub.spaces(of: "u_b") == [])
        #expect(sink.messages == [RealtimeHub.syncAvailable(appID: "cal", tables: ["events"])])
        #expect(sink.closedFor == .shutdown)
    }
}

/// A connection's messages, kept in order (what a socket would have been sent).
final class CollectingSink: NoticeSink {
    private let state = Mutex<(messages: [String], closedFor: RealtimeHub.CloseReason?)>(([], nil))
    var messages: [String] { state.withLock { $0.messages } }
    var closedFor: RealtimeHub.CloseReason? { state.withLock { $0.closedFor } }

    func send(_ text: String) -> Bool {
        state.withLock { $0.messages.append(text) }
        return true
    }

    func close(_ why: RealtimeHub.CloseReason) {
        state.withLock { $0.closedFor = why }
    }
}
