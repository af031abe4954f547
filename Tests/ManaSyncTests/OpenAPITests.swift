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
        try OpenAPICheck.verify(
            routes: routes.withLock { $0 }, besides: ["get /ws", "get /ws/{appId}"], document: try #require(openAPIURL), docsName: "mana-sync")
    }

    @Test func theDocumentIsServed() async throws {
        try await SyncHarness.run { (h: SyncHarness) async throws in
            let served = try await h.caller.send(.get, "/openapi.json")
            #expect(served.status == .ok && served.body["info"]?["title"] == "mana-sync")
        }
    }
}
