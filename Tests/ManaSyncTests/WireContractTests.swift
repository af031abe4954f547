import Foundation
import HTTPKit
import Hummingbird
import Testing
import TestSupport

@testable import ManaSync

/// The request shapes today's clients send (the mana web app, the local-store apps, and the
/// newer upstream clients), and the answers they rely on: status codes, field names, texts.
/// `docs/compatibility.md` lists what deliberately differs from the original server.
@Suite(.timeLimit(.minutes(5))) struct WireContractTests {
    static let epoch = "1970-01-01T00:00:00.000000Z"

    /// Sends a push body exactly as given (the client's own JSON, not re-encoded).
    static func pushRaw(_ h: SyncHarness, _ app: String, as user: String, _ body: String, clientHeader: String? = nil)
        async throws -> (status: HTTPResponse.Status, body: JSONValue)
    {
        try await h.call(.post, "/sync/\(app)", as: user, clientID: clientHeader, body: body)
    }

    // MARK: Push and pull shapes

    @Test func theOriginalAnswerShapeWithTheClientIdInTheHeader() async throws {
        try await SyncHarness.run { (h: SyncHarness) async throws in
            // The web app sends X-Client-Id and a `since` with millisecond precision.
            let pushed = try await Self.pushRaw(
                h, "todo", as: "web", #"{"since":"2024-01-01T10:00:00.000Z","changes":[{"table":"todos","id":"t1","op":"insert","data":{"title":"x"}}]}"#,
                clientHeader: "tab-1")
            #expect(pushed.status == .ok)
            #expect(Set(pushed.body.objectValue?.keys ?? [:].keys) == ["serverChanges", "conflicts", "syncedUntil", "hasMore"])
            let pulled = try await h.pull("todo", as: "web", collection: "todos", since: "2024-01-01T10:00:00.000Z", client: "tab-2")
            #expect(Set(pulled.body.objectValue?.keys ?? [:].keys) == ["serverChanges", "conflicts", "syncedUntil", "hasMore"])
            let change = try #require(pulled.body["serverChanges"]?.array?.first)
            #expect(change["table"] == "todos" && change["id"] == "t1" && change["op"] == "insert" && change["data"] == ["title": "x"])
            let unauthorized = try await h.call(.get, "/sync/todo/pull?collection=t&since=\(Self.epoch)", as: nil)
            #expect(unauthorized.status == .unauthorized && unauthorized.body["error"] != nil && unauthorized.body["message"] != nil)
        }
    }

    // MARK: Tolerant input

    /// JavaScript drops `value: undefined`; undo-delete sends `{"deletedAt": {"updatedAt": …}}`.
    /// That is `value: null`, not a batch the client would resend forever.
    @Test func aFieldEntryWithoutValueMeansNull() async throws {
        try await SyncHarness.run { (h: SyncHarness) async throws in
            let body = #"{"clientId":"A","changes":[{"table":"notes","id":"n1","op":"update","fields":{"deletedAt":{"updatedAt":"2026-05-01T10:00:00.000Z"},"title":{"value":"kept","updatedAt":"2026-05-01T10:00:00.000Z"}}}]}"#
            #expect(try await Self.pushRaw(h, "notes", as: "undo", body).status == .ok)
            let pulled = try await h.pull("notes", as: "undo", collection: "notes", since: Self.epoch, client: "B")
            let fields = try #require(pulled.body["serverChanges"]?.array?.first?["fields"])
            #expect(fields["deletedAt"] == ["value": .null, "updatedAt": "2026-05-01T10:00:00.000Z"])
            #expect(fields["title"] == ["value": "kept", "updatedAt": "2026-05-01T10:00:00.000Z"])
        }
    }

    /// An update of internal keys only arrives as `fields: {}`, without `fields`, or with
    /// `_`-prefixed fields only:
    /// accepted (200), stores nothing; the rest of the batch is stored.
    @Test func updatesOfInternalKeysOnlyAreAcceptedAndNotStored() async throws {
        try await SyncHarness.run { (h: SyncHarness) async throws in
            let body = #"""
                {"clientId":"A","changes":[
                  {"table":"t","id":"a","op":"update","fields":{}},
                  {"table":"t","id":"d","op":"update","data":{"title":"no fields"}},
                  {"table":"t","id":"b","op":"update","fields":{"_syncedAt":{"value":1,"updatedAt":"2026-05-01T10:00:00Z"}}},
                  {"table":"t","id":"c","op":"update","fields":{"_x":{"value":1,"updatedAt":"2026-05-01T10:00:00Z"},"title":{"value":"y","updatedAt":"2026-05-01T10:00:00Z"}}}
                ]}
                """#
            #expect(try await Self.pushRaw(h, "app", as: "internal", body).status == .ok)
            let pulled = try await h.pull("app", as: "internal", collection: "t", since: Self.epoch, client: "B")
            #expect(pulled.body["serverChanges"]?.array?.compactMap { $0["id"]?.stringValue } == ["c"])
            let onlyNoOps = #"{"clientId":"A","changes":[{"table":"t","id":"a","op":"update","fields":{}}]}"#
            let answer = try await Self.pushRaw(h, "other", as: "internal", onlyNoOps)
            #expect(answer.status == .ok && answer.body["syncedUntil"] == .string(Self.epoch))
        }
    }

    /// The local-store clients push everything pending in one request after a login: the
    /// defaults allow 50,000 changes in 32 MB (a 50,000-change push is timed in `bench/`).
    @Test func largePushesUpToTheLimitAreOneTransactionAndTheLimitIsNamed() async throws {
        var reader = ConfigReader(environment: [:])
        let defaults = SyncConfiguration(reading: &reader).push
        #expect(defaults.maximumChanges == 50_000 && defaults.maximumBodyBytes == 32 << 20)

        try await SyncHarness.run(limits: { $0.maximumChanges = 3_000 }) { (h: SyncHarness) async throws in
            let changes = (0..<3_000).map { Changes.insert("bulk", "r\($0)", ["n": .number(Double($0)), "title": "after login"]) }
            #expect(try await h.push("bulk", as: "login", client: "A", changes: changes).status == .ok)
            let count = try await h.withDatabase { client in
                try await client.query("SELECT count(DISTINCT cursor)::int FROM sync.changes WHERE user_id = 'login'").decode(Int.self).reduce(0, +)
            }
            #expect(count == 3_000)
            let refused = try await h.push("bulk", as: "login", client: "A", changes: changes + [Changes.delete("t", "one-too-many")])
            #expect(refused.status == .contentTooLarge)
            #expect(refused.body["message"]?.stringValue?.contains("3000 changes (SYNC_MAX_CHANGES)") == true, "\(refused.body)")
        }
    }

    // MARK: Forward compatibility with the newer clients

    @Test func unknownKeysOfAChangeAreKeptAndServedVerbatim() async throws {
        try await SyncHarness.run { (h: SyncHarness) async throws in
            h.auth.set("new", ["org_fam": "member"])  // a space write needs a write role there (SpaceWriteTests)
            let body = #"""
                {"clientId":"c1","since":"2026-04-20T10:00:00.000Z","schemaVersion":1,"changes":[
                  {"table":"events","id":"e1","op":"insert","spaceId":"org_fam","schemaVersion":1,
                   "data":{"id":"e1","title":"Zoo","spaceId":"org_fam"},"actor":{"kind":"user","id":"u_a"},"origin":"user",
                   "somethingNew":[1,{"deep":null}]},
                  {"table":"events","id":"e1","op":"update","spaceId":"org_fam",
                   "fields":{"title":{"value":"Zoo!","at":"2026-04-20T10:01:00.000Z"}}}]}
                """#
            #expect(try await Self.pushRaw(h, "cal", as: "new", body).status == .ok)
            let expected: [JSONValue] = [
                [
                    "table": "events", "id": "e1", "op": "insert", "spaceId": "org_fam", "schemaVersion": 1,
                    "data": ["id": "e1", "title": "Zoo", "spaceId": "org_fam"], "actor": ["kind": "user", "id": "u_a"], "origin": "user",
                    "somethingNew": [1, ["deep": .null]],
                ],
                ["table": "events", "id": "e1", "op": "update", "spaceId": "org_fam", "fields": ["title": ["value": "Zoo!", "at": "2026-04-20T10:01:00.000Z"]]],
            ]
            let pulled = try await h.pull("cal", as: "new", collection: "events", since: Self.epoch, client: "c2")
            #expect(pulled.body["serverChanges"]?.withoutEventIDs == .array(expected))
            // The push answer of another client carries the same shape.
            let other = try await h.push("cal", as: "new", client: "c2", changes: [])
            #expect(other.body["serverChanges"]?.withoutEventIDs == .array(expected))
            // So does the SSE stream.
            let token = try await h.token("new")
            let stream = SSEProbe(
                url: h.caller.baseURL + "/sync/cal/stream?collections=events&since=\(Self.epoch)",
                headers: [("Authorization", "Bearer \(token)"), ("X-Client-Id", "c3")])
            let events = await stream.waitFor("changes", count: 1)
            #expect(events.first?.data["changes"]?.withoutEventIDs == .array(expected))
            await stream.close()
        }
    }

    @Test func everyServedChangeCarriesAStableUniqueEventId() async throws {
        try await SyncHarness.run { (h: SyncHarness) async throws in
            let changes = (0..<5).map { Changes.update("t", "r", "f", .number(Double($0))) }
            // A client's own eventId is not trusted: the server assigns one.
            var spoofed = Changes.insert("t", "s", [:]).objectValue!
            spoofed["eventId"] = "not-mine"
            #expect(try await h.push("app", as: "ev", client: "A", changes: changes + [.object(spoofed)]).status == .ok)
            let first = try await h.pull("app", as: "ev", collection: "t", since: Self.epoch, client: "B")
            let second = try await h.pull("app", as: "ev", collection: "t", since: Self.epoch, client: "C")
            let ids = first.body["serverChanges"]?.array?.compactMap { $0["eventId"]?.stringValue } ?? []
            #expect(ids.count == 6 && Set(ids).count == 6)
            #expect(ids.allSatisfy { UUID(uuidString: $0) != nil })
            #expect(ids == second.body["serverChanges"]?.array?.compactMap { $0["eventId"]?.stringValue })
        }
    }

    @Test func aFieldTimestampUnderAtIsValidatedLikeUpdatedAt() async throws {
        try await SyncHarness.run { (h: SyncHarness) async throws in
            let bad = #"{"clientId":"A","changes":[{"table":"t","id":"1","op":"update","fields":{"f":{"value":1,"at":"yesterday"}}}]}"#
            let refused = try await Self.pushRaw(h, "app", as: "at", bad)
            #expect(refused.status == .badRequest && refused.body["details"]?["field"] == "fields.f.at", "\(refused.body)")
            let missing = #"{"clientId":"A","changes":[{"table":"t","id":"1","op":"update","fields":{"f":{"value":1}}}]}"#
            #expect(try await Self.pushRaw(h, "app", as: "at", missing).body["details"]?["field"] == "fields.f.at")
        }
    }

    @Test func aNewerSchemaVersionIs400NamingTheSupportedOne() async throws {
        try await SyncHarness.run { (h: SyncHarness) async throws in
            let onChangeset = #"{"clientId":"A","schemaVersion":2,"changes":[{"table":"t","id":"1","op":"insert","data":{}}]}"#
            let refused = try await Self.pushRaw(h, "app", as: "v2", onChangeset)
            #expect(refused.status == .badRequest && refused.body["details"]?["field"] == "schemaVersion")
            #expect(refused.body["message"]?.stringValue?.contains("schema version 1") == true, "\(refused.body)")
            let onChange = #"{"clientId":"A","changes":[{"table":"t","id":"1","op":"insert","data":{}},{"table":"t","id":"2","op":"insert","data":{},"schemaVersion":3}]}"#
            let second = try await Self.pushRaw(h, "app", as: "v2", onChange)
            #expect(second.status == .badRequest && second.body["details"]?["index"] == 1 && second.body["details"]?["field"] == "schemaVersion")
            #expect(try await h.pull("app", as: "v2", collection: "t", since: Self.epoch).body["serverChanges"] == [])
        }
    }

    // MARK: Observability

    @Test func theOriginalsConnectionGaugesAreExported() async throws {
        try await SyncHarness.run { (h: SyncHarness) async throws in
            let socket = try await WSProbe.authenticated(h.ws("/ws"), token: try await h.token("gauge"))
            let text = try await h.caller.sendText(.get, "/metrics").text
            #expect(text.contains("mana_sync_connections_total 1"), "\(text)")
            #expect(text.contains("mana_sync_users_connected 1"))
            await socket.close()
        }
    }
}
