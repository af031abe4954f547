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
    package func withGuardedConnection<T: Sendable>(
        _ body: @escaping @Sendable (PostgresConnection) async throws -> T
    ) async throws -> T {
        try await withConnection { connection in try await connection.guarded(body) }
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
                self.closeFuture.whenComplete { _ in
                    work.cancel()
                    finish(.failure(DatabaseConnectionLost()))
                }
            }
        } onCancel: {
            work.cancel()
        }
    }
}
