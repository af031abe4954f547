import Foundation
import HTTPKit
import Hummingbird
import SharedAuth
import Testing
import TestSupport

@testable import ManaCredits

@Suite struct CreditsOpenAPITests {
    @Test func everyRouteIsDocumentedAndEveryDocumentedOperationExists() async throws {
        let routes = Shared<[(method: HTTPRequest.Method, path: String)]>([])
        _ = try await buildApplication(
            CreditsConfiguration(
                chassis: TestDatabase.settings(serviceName: "mana-credits", database: try TestDatabase.unreachable()),
                auth: AuthSettings(jwksURL: "http://127.0.0.1:1/jwks", serviceKeys: ["k"])),
            registeredRoutes: { found in routes.withLock { $0 = found } })
        try OpenAPICheck.verify(routes: routes.withLock { $0 }, document: try #require(openAPIURL), docsName: "mana-credits")
    }

    @Test func theDocumentIsServed() async throws {
        try await CreditsHarness.run { (h: CreditsHarness) async throws in
            let served = try await h.caller.send(.get, "/openapi.json")
            #expect(served.status == .ok && served.body["info"]?["title"] == "mana-credits")
        }
    }
}
