import Foundation
import Hummingbird
import NIOConcurrencyHelpers
import NIOCore

/// A small real HTTP server on loopback standing in for a third party or another service
/// (mana-credits, mana-notify, mana-auth's JWKS): the test gives its routes; the server
/// records every request, and can be stopped and started again on the same port.
package final class StandInServer: Sendable {
    /// One request as the stand-in received it.
    package struct Received: Sendable {
        package let method: String
        package let path: String
        package let headers: HTTPFields
        package let body: String
    }

    private let boundPort: NIOLockedValueBox<Int?>
    private let configure: @Sendable (Router<BasicRequestContext>) -> Void
    private let received = NIOLockedValueBox<[Received]>([])
    private let task = NIOLockedValueBox<Task<Void, any Error>?>(nil)

    /// Picks a free port (outside the ephemeral range, so it stays free while the server is
    /// stopped); call ``start()`` to serve `routes`.
    package init(routes: @escaping @Sendable (Router<BasicRequestContext>) -> Void) throws {
        self.boundPort = NIOLockedValueBox(try FreePort.find())
        self.configure = routes
    }

    package var port: Int { boundPort.withLockedValue { $0 } ?? 0 }

    package var baseURL: String { "http://127.0.0.1:\(port)" }

    /// Every request so far, oldest first.
    package var requests: [Received] { received.withLockedValue { $0 } }

    /// The requests whose path is `path`.
    package func requests(to path: String) -> [Received] { requests.filter { $0.path == path } }

    /// Starts serving and returns once the port accepts connections.
    package func start() async throws {
        let router = Router()
        router.add(middleware: Recorder(received: received))
        configure(router)
        let (stream, continuation) = AsyncStream<Int>.makeStream()
        let app = Application(
            router: router, configuration: .init(address: .hostname("127.0.0.1", port: boundPort.withLockedValue { $0 } ?? 0)),
            onServerRunning: { channel in continuation.yield(channel.localAddress?.port ?? 0) }, logger: TestDatabase.logger)
        let running = Task {
            defer { continuation.finish() }
            try await app.run()
        }
        task.withLockedValue { $0 = running }
        var iterator = stream.makeAsyncIterator()
        guard let port = await iterator.next() else {
            try await running.value
            throw LiveService.StoppedBeforeServing()
        }
        boundPort.withLockedValue { $0 = port }
    }

    /// Stops serving (at most a few seconds, even with requests still hanging); the port
    /// refuses connections afterwards.
    package func stop() async {
        let running = task.withLockedValue { task -> Task<Void, any Error>? in
            defer { task = nil }
            return task
        }
        guard let running else { return }
        running.cancel()
        _ = await LiveService.finishes(running, within: .seconds(5))
    }

    private struct Recorder: RouterMiddleware {
        let received: NIOLockedValueBox<[Received]>

        func handle(_ request: Request, context: BasicRequestContext, next: (Request, BasicRequestContext) async throws -> Response)
            async throws -> Response
        {
            var request = request
            let body = try await request.collectBody(upTo: 16 << 20)
            received.withLockedValue {
                $0.append(Received(method: request.method.rawValue, path: request.uri.path, headers: request.headers, body: String(buffer: body)))
            }
            return try await next(request, context)
        }
    }
}

extension Response {
    /// A JSON response for stand-in routes.
    package static func json(_ text: String, status: HTTPResponse.Status = .ok) -> Response {
        Response(status: status, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(string: text)))
    }
}

extension Router<BasicRequestContext> {
    /// mana-auth's `GET /api/v1/internal/users/{userId}/memberships` (MEMBERSHIPS_URL) for a
    /// world where nobody belongs to a shared space: an empty list for everyone.
    package func addNoMemberships() {
        get("api/v1/internal/users/:userId/memberships") { _, context -> Response in
            .json(#"{"userId":"\#(context.parameters.get("userId") ?? "")","memberships":[]}"#)
        }
    }
}
