import Logging
import Metrics
import NIOConcurrencyHelpers
import NIOCore
import PostgresNIO

/// The database connection closed under a request (PostgreSQL restarted, the backend was
/// terminated, the network broke). Answered 503: a retry on a fresh connection may succeed.
package struct DatabaseConnectionLost: Error, CustomStringConvertible {
    package init() {}
    package var description: String { "the database connection closed during the request" }
}

extension PostgresClient {
    /// `withConnection` that returns as soon as the leased connection closes.
    ///
    /// PostgresNIO (1.33) writes a query to its channel without a write promise: a query sent
    /// on a connection whose channel has just closed never completes, so the request, and
    /// the pool slot it leases, would wait forever. (Seen in the reliability suite: a backend
    /// terminated between a transaction's last query and its COMMIT wedged the pool.) Here the
    /// body runs in its own task, raced against the connection's close: when the channel
    /// closes first the caller gets ``DatabaseConnectionLost`` and the lease goes back to the
    /// pool, which discards the closed connection.
    ///
    /// Cancellation (the request deadline) is honoured at once even while the lease waits
    /// for a connection the pool cannot make (PostgreSQL down): the caller gets
    /// `CancellationError`, and a lease granted later runs nothing.
    package func withGuardedConnection<T: Sendable>(
        _ body: @escaping @Sendable (PostgresConnection) async throws -> T
    ) async throws -> T {
        let work = Task {
            let wait = PoolUse.Wait()
            defer { wait.end() }
            return try await withConnection { connection in
                wait.end()
                PoolUse.inUse.increment()
                defer { PoolUse.inUse.decrement() }
                // Abandoned while waiting for the lease: the caller has answered already.
                try Task.checkCancellation()
                return try await connection.guarded(body)
            }
        }
        return try await value(of: work, cancellingItWhenAbandoned: true)
    }

    /// One statement whose rows are not needed, on a guarded connection.
    package func guardedExecute(_ query: PostgresQuery, logger: Logger) async throws {
        try await withGuardedConnection { _ = try await $0.query(query, logger: logger) }
    }

    /// A transaction (BEGIN, body, COMMIT; ROLLBACK when the body throws) on a guarded
    /// connection. The body's own error is thrown as is.
    package func withGuardedTransaction<T: Sendable>(
        logger: Logger, _ body: @escaping @Sendable (PostgresConnection) async throws -> T
    ) async throws -> T {
        try await withGuardedConnection { connection in
            try await connection.query("BEGIN;", logger: logger)
            let value: T
            do {
                value = try await body(connection)
            } catch {
                _ = try? await connection.query("ROLLBACK;", logger: logger)
                throw error
            }
            try await connection.query("COMMIT;", logger: logger)
            return value
        }
    }
}

/// Pool use as the process's metrics backend sees it (the service's registry under `serve`):
/// leases held by guarded work (requests and background jobs; the mana-sync listener's own
/// connection is not among them) and leases waiting for a connection. The pool's size is
/// `db_pool_connections_max`, set by ``ServiceChassis``.
enum PoolUse {
    static let inUse = Meter(label: "db_pool_connections_in_use")
    static let waiting = Meter(label: "db_pool_lease_waiting")

    /// One lease's wait: counted from creation until the first ``end()``.
    final class Wait: Sendable {
        private let ended = NIOLockedValueBox(false)

        init() { PoolUse.waiting.increment() }

        func end() {
            let first = ended.withLockedValue { ended in
                defer { ended = true }
                return !ended
            }
            if first { PoolUse.waiting.decrement() }
        }
    }
}

extension PostgresConnection {
    /// Runs `body` with this connection; throws ``DatabaseConnectionLost`` as soon as the
    /// connection closes, even if `body` is stuck in a query that will never answer.
    package func guarded<T: Sendable>(_ body: @escaping @Sendable (PostgresConnection) async throws -> T) async throws -> T {
        let work = Task { try await body(self) }
        let outcome = OneShot<T>()
        let token = CloseWatch.shared.watch(self) {
            work.cancel()
            outcome.resume(with: .failure(DatabaseConnectionLost()))
        }
        defer { CloseWatch.shared.unwatch(self, token) }
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { continuation in
                outcome.attach(continuation)
                Task { outcome.resume(with: await work.result) }
            }
        } onCancel: {
            work.cancel()
        }
    }
}

/// Who waits on which connection's close. NIO cannot remove a callback from a future, so
/// each connection gets one `closeFuture` callback (registered the first time it is
/// watched) that calls whoever watches it at that moment; watchers come and go with each
/// lease without piling callbacks onto long-lived connections.
final class CloseWatch: Sendable {
    static let shared = CloseWatch()

    /// Per connection, its watchers' actions by token. A connection's entry goes when it
    /// closes; watching it again afterwards registers on its (completed) close future, which
    /// runs the action at once.
    private let state = NIOLockedValueBox<(next: Int, connections: [ObjectIdentifier: [Int: @Sendable () -> Void]])>((0, [:]))

    /// Runs `onClose` when `connection` closes, unless ``unwatch(_:_:)`` comes first.
    func watch(_ connection: PostgresConnection, onClose: @escaping @Sendable () -> Void) -> Int {
        let key = ObjectIdentifier(connection)
        let (token, isNew) = state.withLockedValue { state -> (Int, Bool) in
            state.next += 1
            let isNew = state.connections[key] == nil
            state.connections[key, default: [:]][state.next] = onClose
            return (state.next, isNew)
        }
        if isNew {
            connection.closeFuture.whenComplete { [weak self] _ in self?.closed(key) }
        }
        return token
    }

    func unwatch(_ connection: PostgresConnection, _ token: Int) {
        _ = state.withLockedValue { $0.connections[ObjectIdentifier(connection)]?.removeValue(forKey: token) }
    }

    private func closed(_ key: ObjectIdentifier) {
        let actions = state.withLockedValue { $0.connections.removeValue(forKey: key)?.values.map { $0 } ?? [] }
        actions.forEach { $0() }
    }
}

/// A continuation resumed once, by whichever result comes first (a result that arrives
/// before the continuation is attached is kept for it).
package final class OneShot<T: Sendable>: Sendable {
    private enum State {
        case empty
        case waiting(CheckedContinuation<T, any Error>)
        case resulted(Result<T, any Error>)
        case done
    }

    private let state = NIOLockedValueBox<State>(.empty)

    package init() {}

    package func attach(_ continuation: CheckedContinuation<T, any Error>) {
        let early = state.withLockedValue { state -> Result<T, any Error>? in
            switch state {
            case .empty:
                state = .waiting(continuation)
                return nil
            case .resulted(let result):
                state = .done
                return result
            case .waiting, .done:
                return nil
            }
        }
        if let early { continuation.resume(with: early) }
    }

    package func resume(with result: Result<T, any Error>) {
        let waiting = state.withLockedValue { state -> CheckedContinuation<T, any Error>? in
            switch state {
            case .empty:
                state = .resulted(result)
                return nil
            case .waiting(let continuation):
                state = .done
                return continuation
            case .resulted, .done:
                return nil
            }
        }
        waiting?.resume(with: result)
    }
}

/// The value of `task`, or `CancellationError` as soon as the waiting task is cancelled,
/// even if `task` ignores cancellation (a pool lease, a lookup other requests share).
/// `cancellingItWhenAbandoned` also cancels `task`; leave it false for a shared one.
package func value<T: Sendable, Failure: Error>(
    of task: Task<T, Failure>, cancellingItWhenAbandoned: Bool = false
) async throws -> T {
    let outcome = OneShot<T>()
    return try await withTaskCancellationHandler {
        try await withCheckedThrowingContinuation { continuation in
            outcome.attach(continuation)
            Task { outcome.resume(with: await task.result.mapError { $0 as any Error }) }
        }
    } onCancel: {
        if cancellingItWhenAbandoned { task.cancel() }
        outcome.resume(with: .failure(CancellationError()))
    }
}
