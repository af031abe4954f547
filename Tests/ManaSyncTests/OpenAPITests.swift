import Foundation
import HTTPKit
import Hummingbird
import SharedAuth
import Testing
import TestSupport

@testable import ManaSync

@Suite struct SyncOpenAPITests {
    @Test func everyRouteIsDocumentedAndEveryDocumentedOperationExists() async throws {
        let routes = Shared<[(method: HTTPRequest.Method, path: String)]>([])
        _ = try await buildApplication(
            SyncConfiguration(
                chassis: TestDatabase.settings(serviceName: "mana-sync", database: try TestDatabase.unreachable()),
                auth: AuthSettings(jwksURL: "http://127.0.0.1:1/jwks", serviceKeys: ["k"]),
                billing: BillingSettings(creditsURL: "http://127.0.0.1:1")),
            registeredRoutes: { found in routes.withLock { $0 = found } })
        // The WebSocket routes live on their own router.
        let expected = OpenAPICheck.normalized(routes.withLock { $0 }).union(["get /ws", "get /ws/{appId}"])
        let (operations, document) = try OpenAPICheck.operations(in: try #require(openAPIURL))
        #expect(expected.subtracting(operations).sorted() == [], "routes missing from the document")
        #expect(operations.subtracting(expected).sorted() == [], "documented operations the router does not have")
        #expect(document["openapi"]?.stringValue?.hasPrefix("3.1") == true)
        #expect(OpenAPICheck.operationsWithoutResponses(document) == [])
        // docs/ holds the same document (both are written by docs/openapi/generate.py).
        let docsCopy = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../docs/openapi/mana-sync.json")
        #expect(try Data(contentsOf: docsCopy) == (try Data(contentsOf: try #require(openAPIURL))))
    }

    @Test func theDocumentIsServed() async throws {
        try await SyncHarness.run { (h: SyncHarness) async throws in
            let served = try await h.caller.send(.get, "/openapi.json")
            #expect(served.status == .ok && served.body["info"]?["title"] == "mana-sync")
        }
    }
}
