import Foundation
import HTTPKit
import PostgresNIO
import TestSupport
import Testing

@testable import ManaSync

/// Who may write into a shared space (spaces.md section 9): a write role in the space from
/// mana-auth (a stand-in here), no foreign personal spaces, no record moving between spaces,
/// 503 while memberships cannot be resolved; a refused push stores nothing.
@Suite(.timeLimit(.minutes(15))) struct SpaceWriteTests {
    static let stamp: JSONValue = "2026-04-20T10:01:00.000Z"

    static func stored(_ h: SyncHarness) async throws -> Int {
        try await h.withDatabase { client in
            try await client.query("SELECT count(*)::int FROM sync.changes", logger: TestDatabase.logger).decode(Int.self).reduce(0) { $1 }
        }
    }

    @Test func aWriteRoleInTheSpaceIsNeededAndARefusedPushStoresNothing() async throws {
        try await SyncHarness.run { h in
            h.auth.set("u_member", ["org_fam": "member"])
            h.auth.set("u_viewer", ["org_fam": "viewer"])
            h.auth.set("u_custom", ["org_fam": "coach"])
            #expect(try await h.push("cal", as: "u_member", client: "c", changes: [SpaceReadTests.insert("e1", space: "org_fam")]).status == .ok)
            #expect(try await h.push("cal", as: "u_member", client: "c", changes: [SpaceReadTests.insert("p1", space: "_personal:u_member")]).status == .ok)
            #expect(try await Self.stored(h) == 2)
            for (user, space) in [("u_viewer", "org_fam"), ("u_custom", "org_fam"), ("u_stranger", "org_fam"), ("u_member", "_personal:u_viewer")] {
                let refused = try await h.push(
                    "cal", as: user, client: "c", changes: [SpaceReadTests.insert("mine-\(user)", space: nil), SpaceReadTests.insert("e9", space: space)])
                #expect(refused.status == .forbidden, "\(user) into \(space)")
                #expect(refused.body["message"] == .string("forbidden: space \(space) (change 1)"))
                #expect(refused.body["details"]?["index"] == 1)
            }
            #expect(try await Self.stored(h) == 2)
            // The space can come from the record itself, as the original resolves it.
            let fromData: JSONValue = ["table": "events", "id": "e2", "op": "insert", "data": ["spaceId": "org_fam"]]
            #expect(try await h.push("cal", as: "u_viewer", client: "c", changes: [fromData]).status == .forbidden)
            let fromFields: JSONValue = ["table": "events", "id": "e1", "op": "update", "fields": ["spaceId": ["value": "org_fam", "at": Self.stamp]]]
            #expect(try await h.push("cal", as: "u_viewer", client: "c", changes: [fromFields]).status == .forbidden)
            #expect(try await Self.stored(h) == 2)
        }
    }

    @Test func aRecordStaysInItsFirstSpace() async throws {
        try await SyncHarness.run { h in
            h.auth.set("u_a", ["org_fam": "owner", "org_work": "member"])
            h.auth.set("u_b", ["org_work": "admin"])
            #expect(try await h.push("cal", as: "u_a", client: "c", changes: [SpaceReadTests.insert("e1", space: "org_fam")]).status == .ok)
            let moved = try await h.push(
                "cal", as: "u_a", client: "c", changes: [SpaceReadTests.insert("other", space: nil), SpaceReadTests.insert("e1", space: "org_work")])
            #expect(moved.status == .conflict)
            #expect(moved.body["message"] == "conflict: record of change 1 belongs to space org_fam, not org_work")
            // Another user, another space, the same record: refused too.
            #expect(try await h.push("cal", as: "u_b", client: "c", changes: [SpaceReadTests.insert("e1", space: "org_work")]).status == .conflict)
            // One push naming two spaces for a new record: the first one decides.
            let split = try await h.push("cal", as: "u_a", client: "c", changes: [SpaceReadTests.insert("e5", space: "org_fam"), SpaceReadTests.insert("e5", space: "org_work")])
            #expect(split.status == .conflict && split.body["details"]?["index"] == 1)
            #expect(try await Self.stored(h) == 1)
            // The same space again, a change without a space, another app or table: fine.
            #expect(try await h.push("cal", as: "u_a", client: "c", changes: [SpaceReadTests.insert("e1", space: "org_fam"), SpaceReadTests.insert("e1", space: nil)]).status == .ok)
            #expect(try await h.push("todo", as: "u_a", client: "c", changes: [SpaceReadTests.insert("e1", space: "org_work")]).status == .ok)
        }
    }

    @Test func withoutMembershipsSpaceWritesGet503AndOwnWritesGoOn() async throws {
        try await SyncHarness.run(memberships: { $0.freshTTL = .seconds(1) }) { h in
            h.auth.set("u_a", ["org_fam": "member"])
            #expect(try await h.push("cal", as: "u_a", client: "c", changes: [SpaceReadTests.insert("e1", space: "org_fam")]).status == .ok)
            try await Task.sleep(for: .milliseconds(1_200))
            await h.auth.server.stop()
            // An answer up to 15 minutes old still serves.
            #expect(try await h.push("cal", as: "u_a", client: "c", changes: [SpaceReadTests.insert("e2", space: "org_fam")]).status == .ok)
            // A user never answered: no space writes, own writes as always.
            let refused = try await h.call(
                .post, "/sync/cal", as: "u_new", headers: [:],
                body: #"{"clientId":"c","changes":[{"table":"events","id":"n1","op":"insert","data":{},"spaceId":"org_fam"}]}"#)
            #expect(refused.status == .serviceUnavailable)
            let raw = try await h.caller.sendText(
                .post, "/sync/cal", headers: [.authorization: "Bearer \(try await h.token("u_new"))", .contentType: "application/json"],
                body: #"{"clientId":"c","changes":[{"table":"events","id":"n1","op":"insert","data":{},"spaceId":"org_fam"}]}"#)
            #expect(raw.headers["Retry-After"].first == "5")
            #expect(try await h.push("cal", as: "u_new", client: "c", changes: [SpaceReadTests.insert("n2", space: nil)]).status == .ok)
            #expect(try await h.push("cal", as: "u_new", client: "c", changes: [SpaceReadTests.insert("n3", space: "_personal:u_new")]).status == .ok)
        }
    }

    @Test func anInvalidationTakesARoleChangeAtOnce() async throws {
        try await SyncHarness.run { h in
            h.auth.set("u_b", ["org_fam": "member"])
            #expect(try await h.push("cal", as: "u_b", client: "c", changes: [SpaceReadTests.insert("e1", space: "org_fam")]).status == .ok)
            h.auth.set("u_b", ["org_fam": "viewer"])
            #expect(try await h.push("cal", as: "u_b", client: "c", changes: [SpaceReadTests.insert("e2", space: "org_fam")]).status == .ok)  // cached
            try await h.invalidateMemberships(["u_b"])
            #expect(try await h.push("cal", as: "u_b", client: "c", changes: [SpaceReadTests.insert("e3", space: "org_fam")]).status == .forbidden)
        }
    }
}
