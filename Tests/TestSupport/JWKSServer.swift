import Foundation
import Hummingbird
import NIOConcurrencyHelpers
import NIOCore

/// A loopback stand-in for mana-auth's JWKS endpoint (`GET /api/auth/jwks`): serves a
/// document the test can change, counts fetches, and can be stopped and started again on
/// the same port.
package final class JWKSServer: Sendable {
    private let document = NIOLockedValueBox<Data>(Data("{\"keys\":[]}".utf8))
    private let server: StandInServer

    /// Picks a free port; call ``start()`` to serve.
    package init() throws {
        let document = self.document
        server = try StandInServer { router in
            router.get("api/auth/jwks") { _, _ -> Response in .json(String(decoding: document.withLockedValue { $0 }, as: UTF8.self)) }
        }
    }

    package var port: Int { server.port }
    package var url: String { "\(server.baseURL)/api/auth/jwks" }
    package var fetches: Int { server.requests(to: "/api/auth/jwks").count }

    /// Replaces the served document.
    package func serve(_ document: Data) {
        self.document.withLockedValue { $0 = document }
    }

    /// Starts serving and returns once the port accepts connections.
    package func start() async throws { try await server.start() }

    /// Stops serving; the port refuses connections afterwards.
    package func stop() async { await server.stop() }
}
