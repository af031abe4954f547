import Logging
import NIOConcurrencyHelpers
import NIOCore
import PostgresNIO

/// The database connection closed under a request (PostgreSQL restarted, the backend was
/// terminated, the network broke). Answered 503: a retry on a fresh connection may succeed.
package struct DatabaseConnectionLost: Error, CustomStringConvertible {
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
            try await withConnection { connection in
                // Abandoned while waiting for the lease: the caller has answered already.
                try Task.checkCancellation()
                return try await connection.guarded(body)
            }
        }
        let outcome = OneShot<T>()
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { continuation in
                outcome.attach(continuation)
                Task { outcome.resume(with: await work.result) }
            }
        } onCancel: {
            work.cancel()
            outcome.resume(with: .failure(CancellationError()))
        }
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

extension PostgresConnection {
    /// Runs `body` with this connection; throws ``DatabaseConnectionLost`` as soon as the
    /// connection closes, even if `body` is stuck in a query that will never answer.
    package func guarded<T: Sendable>(_ body: @escaping @Sendable (PostgresConnection) async throws -> T) async throws -> T {
        let work = Task { try await body(self) }
        let token = CloseWatch.shared.watch(self) { work.cancel() }
        defer { CloseWatch.shared.unwatch(self, token) }
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<T, any Error>) in
                let resumed = NIOLockedValueBox(false)
                let finish: @Sendable (Result<T, any Error>) -> Void = { result in
                    let first = resumed.withLockedValue { done in
                        defer { done = true }
                        return !done
                    }
                    if first { continuation.resume(with: result) }
                }
                Task { finish(await work.result) }
                CloseWatch.shared.onClose(of: self, token) { finish(.failure(DatabaseConnectionLost())) }
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

    private struct Entry {
        var watchers: [Int: [@Sendable () -> Void]] = [:]
        var closed = false
    }

    private let state = NIOLockedValueBox<(next: Int, connections: [ObjectIdentifier: Entry])>((0, [:]))

    /// Starts watching `connection`; `onClose` actions added under the returned token run when it closes.
    func watch(_ connection: PostgresConnection, _ first: @escaping @Sendable () -> Void) -> Int {
        let key = ObjectIdentifier(connection)
        let (token, isNew, closed) = state.withLockedValue { state -> (Int, Bool, Bool) in
            state.next += 1
            let isNew = state.connections[key] == nil
            state.connections[key, default: Entry()].watchers[state.next] = [first]
            return (state.next, isNew, state.connections[key]?.closed ?? false)
        }
        if isNew {
            connection.closeFuture.whenComplete { [weak self] _ in self?.closed(key) }
        }
        if closed { first() }
        return token
    }

    /// Adds an action to run when the connection closes (at once if it already has).
    func onClose(of connection: PostgresConnection, _ token: Int, _ action: @escaping @Sendable () -> Void) {
        let key = ObjectIdentifier(connection)
        let runNow = state.withLockedValue { state -> Bool in
            guard var entry = state.connections[key], entry.watchers[token] != nil else { return true }
            if entry.closed { return true }
            entry.watchers[token]?.append(action)
            state.connections[key] = entry
            return false
        }
        if runNow { action() }
    }

    func unwatch(_ connection: PostgresConnection, _ token: Int) {
        let key = ObjectIdentifier(connection)
        state.withLockedValue { state in
            state.connections[key]?.watchers[token] = nil
            if let entry = state.connections[key], entry.closed, entry.watchers.isEmpty { state.connections[key] = nil }
        }
    }

    private func closed(_ key: ObjectIdentifier) {
        let actions = state.withLockedValue { state -> [@Sendable () -> Void] in
            guard var entry = state.connections[key] else { return [] }
            entry.closed = true
            let actions = entry.watchers.values.flatMap { $0 }
            // Watchers still registered learn of the close when they add an action.
            entry.watchers = entry.watchers.mapValues { _ in [] }
            state.connections[key] = entry.watchers.isEmpty ? nil : entry
            return actions
        }
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

/// The value of a task shared by several waiters, or `CancellationError` as soon as this
/// waiter is cancelled (the shared task goes on for the others).
package func value<T: Sendable>(of task: Task<T, Never>) async throws -> T {
    let outcome = OneShot<T>()
    return try await withTaskCancellationHandler {
        try await withCheckedThrowingContinuation { continuation in
            outcome.attach(continuation)
            Task { outcome.resume(with: .success(await task.value)) }
        }
    } onCancel: {
        outcome.resume(with: .failure(CancellationError()))
    }
}
