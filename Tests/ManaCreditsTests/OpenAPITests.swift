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
        let expected = OpenAPICheck.normalized(routes.withLock { $0 })
        let (operations, document) = try OpenAPICheck.operations(in: try #require(openAPIURL))
        #expect(expected.subtracting(operations).sorted() == [], "routes missing from the document")
        #expect(operations.subtracting(expected).sorted() == [], "documented operations the router does not have")
        #expect(document["openapi"]?.stringValue?.hasPrefix("3.1") == true)
        #expect(OpenAPICheck.operationsWithoutResponses(document) == [])
        // docs/ holds the same document (both are written by docs/openapi/generate.py).
        let docsCopy = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../docs/openapi/mana-credits.json")
        #expect(try Data(contentsOf: docsCopy) == (try Data(contentsOf: try #require(openAPIURL))))
    }

    @Test func theDocumentIsServed() async throws {
        try await CreditsHarness.run { (h: CreditsHarness) async throws in
            let served = try await h.caller.send(.get, "/openapi.json")
            #expect(served.status == .ok && served.body["info"]?["title"] == "mana-credits")
        }
    }
}
