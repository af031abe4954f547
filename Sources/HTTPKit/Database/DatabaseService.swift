import Logging
import PostgresNIO
import ServiceLifecycle
import Synchronization

/// Runs a `PostgresClient` as a service and tells whoever waits once its `run()` has begun.
///
/// PostgresNIO logs "Trying to lease connection from `PostgresClient`, but
/// `PostgresClient.run()` hasn't been called yet" for every lease that comes before `run()`.
/// Work started beside the client (the migrations before the server starts, a command's
/// body) waits for ``waitUntilRunning()`` first, so no lease can come before `run()`.
package struct DatabaseService: Service {
    package let client: PostgresClient
    private let started = Latch()

    package init(_ client: PostgresClient) {
        self.client = client
    }

    /// The client's background logger: `logger` without PostgresNIO's "run() hasn't been
    /// called yet" warning. Work waits for ``waitUntilRunning()``, which returns when `run()`
    /// is being entered; the warning can still fire in the instant between (the flag it reads
    /// is set inside `run()`), and then it is only noise: the lease waits for the pool.
    package static func backgroundLogger(_ logger: Logger) -> Logger {
        var filtered = Logger(label: logger.label) { _ in PrematureLeaseFilter(inner: logger.handler) }
        filtered.logLevel = logger.logLevel
        return filtered
    }

    package func run() async {
        started.open()
        await client.run()
    }

    /// Returns once ``run()`` has started (its next step enters the client's `run()` without
    /// suspending). Any number of tasks may wait.
    package func waitUntilRunning() async {
        await started.wait()
        // The opener's thread enters `PostgresClient.run()` straight after `open()`; a yield
        // lets it get there before the first lease.
        await Task.yield()
    }
}

/// A gate that opens once and stays open; any number of tasks wait for it, and a waiting
/// task that is cancelled stops waiting.
package final class Latch: Sendable {
    private struct State {
        var isOpen = false
        var next = 0
        var waiters: [Int: CheckedContinuation<Void, Never>] = [:]
    }

    private let state = Mutex(State())

    package init() {}

    package var isOpen: Bool { state.withLock { $0.isOpen } }

    package func open() {
        let waiters = state.withLock { state in
            state.isOpen = true
            defer { state.waiters = [:] }
            return state.waiters.values
        }
        waiters.forEach { $0.resume() }
    }

    /// Returns when the latch is open, or when the task is cancelled.
    package func wait() async {
        let id = state.withLock { state in
            state.next += 1
            return state.next
        }
        await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                let now = state.withLock { state in
                    if state.isOpen || Task.isCancelled { return true }
                    state.waiters[id] = continuation
                    return false
                }
                if now { continuation.resume() }
            }
        } onCancel: {
            state.withLock { $0.waiters.removeValue(forKey: id) }?.resume()
        }
    }
}

/// Forwards everything but PostgresNIO's premature-lease warning (see
/// ``DatabaseService/backgroundLogger(_:)``).
struct PrematureLeaseFilter: LogHandler {
    var inner: any LogHandler

    var logLevel: Logger.Level {
        get { inner.logLevel }
        set { inner.logLevel = newValue }
    }

    var metadata: Logger.Metadata {
        get { inner.metadata }
        set { inner.metadata = newValue }
    }

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { inner[metadataKey: key] }
        set { inner[metadataKey: key] = newValue }
    }

    func log(event: LogEvent) {
        if event.level == .warning, event.message.description.hasPrefix("Trying to lease connection from `PostgresClient`") { return }
        inner.log(event: event)
    }
}
