import HTTPKit
import Hummingbird
import Logging
import NIOCore
import ServiceLifecycle

/// Runs a service under test on a loopback port for the length of a test, and always stops it.
///
/// Stopping is bounded: the test's own connections close first, then the service gets a
/// graceful shutdown of at most `shutdownLimit`, then it is cancelled and the test fails. A
/// test can fail, but it cannot hang in teardown.
package enum LiveService {
    package struct StoppedBeforeServing: Error, CustomStringConvertible {
        package var description: String { "the service stopped before it began serving" }
    }

    package struct ShutdownTimedOut: Error, CustomStringConvertible {
        let limit: Duration
        package var description: String { "the service did not stop within \(limit) of a graceful shutdown" }
    }

    /// Builds the application with the `onServerRunning` callback it is given, serves it, and
    /// runs `body` with a caller for its port.
    package static func run<App: ApplicationProtocol, T>(
        shutdownLimit: Duration = .seconds(30),
        build: (_ onServerRunning: @escaping @Sendable (any Channel) async -> Void) async throws -> App,
        _ body: (HTTPCaller) async throws -> T
    ) async throws -> T {
        try await TestSlots.withSlot { try await serve(shutdownLimit: shutdownLimit, build: build, body) }
    }

    private static func serve<App: ApplicationProtocol, T>(
        shutdownLimit: Duration,
        build: (_ onServerRunning: @escaping @Sendable (any Channel) async -> Void) async throws -> App,
        _ body: (HTTPCaller) async throws -> T
    ) async throws -> T {
        let (ports, continuation) = AsyncStream<Int>.makeStream()
        let app = try await build { channel in continuation.yield(channel.localAddress?.port ?? 0) }
        let group = ServiceGroup(configuration: .init(services: [app], logger: TestDatabase.logger))
        let running = Task {
            defer { continuation.finish() }
            try await group.run()
        }
        var iterator = ports.makeAsyncIterator()
        guard let port = await iterator.next() else {
            try await running.value
            throw StoppedBeforeServing()
        }
        let caller = HTTPCaller(port: port)
        let outcome: Result<T, any Error>
        do {
            outcome = .success(try await body(caller))
        } catch {
            outcome = .failure(error)
        }
        await caller.shutdown()
        await group.triggerGracefulShutdown()
        if await !finishes(running, within: shutdownLimit) {
            running.cancel()
            _ = await finishes(running, within: .seconds(5))
            // A service that does not stop cleanly fails its test (after the test's own failure, if any).
            _ = try outcome.get()
            throw ShutdownTimedOut(limit: shutdownLimit)
        }
        return try outcome.get()
    }

    /// Whether `task` ends within `limit` (HTTPKit's ``finishes(_:within:)``).
    package static func finishes<Success: Sendable>(_ task: Task<Success, any Error>, within limit: Duration) async -> Bool {
        await HTTPKit.finishes(task, within: limit)
    }
}
