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
    ///
    /// `retire` is asked with the body's result whether the connection should be closed
    /// instead of going back to the pool (the pool then opens a new one when it needs it).
    /// PostgresNIO keeps a connection's outgoing message buffer at the largest capacity it
    /// ever needed: one push of a 5 MB batch leaves 8 MB behind on that connection for its
    /// lifetime, twenty of them 300 MB, five times a 64 MB container. Callers that sent a
    /// large message retire the connection to give that memory back.
    package func withGuardedConnection<T: Sendable>(
        retire: @escaping @Sendable (T) -> Bool = { _ in false },
        _ body: @escaping @Sendable (PostgresConnection) async throws -> T
    ) async throws -> T {
        // The work runs in a task of its own, which resolves `outcome` when it ends: the caller
        // can stop waiting (cancelled) while the lease still waits. On the caller's event loop
        // (``ConnectionExecutor``), so that neither task wakes a thread of the global pool.
        let outcome = OneShot<T>()
        let work = Task(executorPreference: ConnectionExecutor.current) {
            await outcome.resume {
                let wait = PoolUse.Wait()
                defer { wait.end() }
                return try await self.withConnection { connection in
                    wait.end()
                    PoolUse.inUse.increment()
                    defer { PoolUse.inUse.decrement() }
                    // Abandoned while waiting for the lease: the caller has answered already.
                    try Task.checkCancellation()
                    let value = try await connection.guarded(body)
                    if retire(value) {
                        PoolUse.retired.increment()
                        try? await connection.close()
                    }
                    return value
                }
            }
        }
        return try await outcome.value(resumingOnCancel: true) { work.cancel() }
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
        let outcome = OneShot<T>()
        let work = Task(executorPreference: ConnectionExecutor.current) { await outcome.resume { try await body(self) } }
        let token = CloseWatch.shared.watch(self) {
            work.cancel()
            outcome.resume(with: .failure(DatabaseConnectionLost()))
        }
        defer { CloseWatch.shared.unwatch(self, token) }
        // Cancelled: the body is told and its end awaited (unless the connection closes first).
        return try await outcome.value(resumingOnCancel: false) { work.cancel() }
    }
}
