import HTTPKit
import Testing

@testable import ManaSync

/// The notice a push sends to the other replicas (``ChangeFeed/pushPayload``).
@Suite struct PushNoticePayloadTests {
    @Test func aNoticeReadsAsTheObjectEveryReplicaReadsAndStartsWithItsSender() throws {
        let payload = ChangeFeed.pushPayload(
            replica: "r1", userID: "u\"1", appID: "todo", clientID: "c\\1", tables: ["a", "b\n\u{1}"], spaces: ["org_x"])
        #expect(
            try JSONParser.parse(payload)
                == ["r": "r1", "k": "push", "u": "u\"1", "a": "todo", "c": "c\\1", "t": ["a", "b\n\u{1}"], "s": ["org_x"]])
        #expect(payload.hasPrefix(ChangeFeed.ownNoticePrefix(replica: "r1")))
        // Another replica whose tag begins the same is not the sender.
        #expect(!payload.hasPrefix(ChangeFeed.ownNoticePrefix(replica: "r")))
        #expect(!ChangeFeed.pushPayload(replica: "r12", userID: "u", appID: "a", clientID: "c", tables: [], spaces: [])
            .hasPrefix(ChangeFeed.ownNoticePrefix(replica: "r1")))
    }

    @Test func aNoticeTooLongForNotifyNamesNoTables() throws {
        let tables = (0..<400).map { "a-table-with-a-long-name-\($0)" }
        let payload = ChangeFeed.pushPayload(replica: "r1", userID: "u", appID: "todo", clientID: "c", tables: tables, spaces: [])
        #expect(payload.utf8.count < 8_000)
        let body = try JSONParser.parse(payload)
        #expect(body["t"] == .null && body["u"] == "u" && body["s"] == [])
        #expect(payload.hasPrefix(ChangeFeed.ownNoticePrefix(replica: "r1")))
    }
}
