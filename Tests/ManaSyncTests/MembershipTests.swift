import Foundation
import HTTPKit
import Hummingbird
import Logging
import Synchronization
import TestSupport
import Testing

@testable import ManaSync

/// Memberships from mana-auth over real HTTP, and the invalidation endpoint (the cache itself:
/// MembershipDirectoryTests).
@Suite(.timeLimit(.minutes(15))) struct MembershipTests {
    static func directory(_ standIn: MembershipStandIn, key: String = SyncHarness.serviceKey, timeout: Duration = .seconds(30))
        -> MembershipDirectory
    {
        var settings = MembershipSettings(authURL: standIn.server.baseURL)
        settings.timeout = timeout
        return MembershipDirectory(settings: settings, serviceKey: key, metrics: ServiceMetrics(), logger: TestDatabase.logger)
    }

    @Test func theDirectoryAsksMana_authWithTheServiceKeyAndTheUserIDAsOneEscapedSegment() async throws {
        let standIn = try MembershipStandIn(serviceKey: SyncHarness.serviceKey)
        try await standIn.server.start()
        standIn.set("u b/1?x", ["org_fam": "member", "org_b_personal": "owner"])
        let directory = Self.directory(standIn)
        #expect(await directory.lookup(userID: "u b/1?x") == .fresh(Memberships(roles: ["org_fam": "member", "org_b_personal": "owner"])))
        let request = try #require(standIn.server.requests.last)
        #expect(request.path == "/api/v1/internal/users/u%20b%2F1%3Fx/memberships")
        #expect(request.headers[.serviceKey] == SyncHarness.serviceKey)
        #expect(await directory.lookup(userID: "stranger") == .fresh(Memberships(roles: [:])))
        await standIn.server.stop()
    }

    @Test func aRefusedKeyATimeoutOrNoServerIsNoAnswer() async throws {
        let standIn = try MembershipStandIn(serviceKey: SyncHarness.serviceKey)
        try await standIn.server.start()
        standIn.set("u_b", ["org_fam": "member"])
        #expect(await Self.directory(standIn, key: "wrong").lookup(userID: "u_b") == .unavailable)
        standIn.hang(true)
        #expect(await Self.directory(standIn, timeout: .milliseconds(300)).lookup(userID: "u_b") == .unavailable)
        await standIn.server.stop()
        #expect(await Self.directory(standIn).lookup(userID: "u_b") == .unavailable)
    }

    @Test func invalidateTakesAListOfUsersWithTheServiceKeyAndRefusesBadBodies() async throws {
        try await SyncHarness.run { h in
            let path = "/internal/memberships/invalidate"
            let key: HTTPFields = [.serviceKey: SyncHarness.serviceKey]
            let accepted = try await h.caller.sendText(.post, path, headers: key + [.contentType: "application/json"], body: #"{"userIds":["u_b","u_c"]}"#)
            #expect(accepted.status == .noContent && accepted.text.isEmpty)
            #expect(try await h.call(.post, path, as: nil, body: #"{"userIds":["u_b"]}"#).status == .unauthorized)
            #expect(try await h.call(.post, path, as: nil, headers: [.serviceKey: "nope"], body: #"{"userIds":["u_b"]}"#).status == .unauthorized)
            let tooMany = "[" + (0...1000).map { #""u\#($0)""# }.joined(separator: ",") + "]"
            for body in [#"{}"#, #"{"userIds":"u_b"}"#, #"{"userIds":[1]}"#, #"{"userIds":[""]}"#, #"{"userIds":\#(tooMany)}"#, #"{"userIds":["#] {
                let refused = try await h.call(.post, path, as: nil, headers: key, body: body)
                #expect(refused.status == .badRequest, "\(body.prefix(40))")
                #expect(refused.body["message"]?.stringValue?.isEmpty == false, "\(body.prefix(40))")
            }
            // Both users were forgotten here (the replica hears its own notice too, which counts again).
            let metrics = try await h.caller.sendText(.get, "/metrics").text
            let counted = metrics.split(separator: "\n").first { $0.hasPrefix("sync_membership_invalidations_total ") }
            #expect((counted?.split(separator: " ").last.flatMap { Double($0) } ?? 0) >= 2, "\(counted ?? "no series")")
        }
    }
}
