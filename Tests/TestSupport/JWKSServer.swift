import Foundation
import Hummingbird
import NIOConcurrencyHelpers
import NIOCore

/// A loopback stand-in for mana-auth's JWKS endpoint (`GET /api/auth/jwks`): serves a
/// document the test can change, counts fetches, and can be stopped and started again on
/// the same port.
package final class JWKSServer: Sendable {
    private let state = NIOLockedValueBox<(document: Data, fetches: Int)>((Data("{\"keys\":[]}".utf8), 0))
    private let task = NIOLockedValueBox<Task<Void, any Error>?>(nil)
    package let port: Int

    /// Reserves a free port; call ``start()`` to serve.
    package init() throws {
        self.port = try FreePort.find()
    }

    package var url: String { "http://127.0.0.1:\(port)/api/auth/jwks" }
    package var fetches: Int { state.withLockedValue { $0.fetches } }

    /// Replaces the served document.
    package func serve(_ document: Data) {
        state.withLockedValue { $0.document = document }
    }

    /// Starts serving and returns once the port accepts connections.
    package func start() async throws {
        let router = Router()
        let state = self.state
        router.get("api/auth/jwks") { _, _ -> Response in
            let data = state.withLockedValue { value -> Data in
                value.fetches += 1
                return value.document
            }
            return Response(
                status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: data)))
        }
        let (stream, continuation) = AsyncStream<Void>.makeStream()
        let app = Application(
            router: router, configuration: .init(address: .hostname("127.0.0.1", port: port)),
            onServerRunning: { _ in continuation.yield() }, logger: TestDatabase.logger)
        let running = Task { try await app.run() }
        task.withLockedValue { $0 = running }
        var iterator = stream.makeAsyncIterator()
        await iterator.next()
    }

    /// Stops serving; the port refuses connections afterwards.
    package func stop() async {
        let running = task.withLockedValue { task -> Task<Void, any Error>? in
            defer { task = nil }
            return task
        }
        guard let running else { return }
        running.cancel()
        _ = await LiveService.finishes(running, within: .seconds(5))
    }
}
