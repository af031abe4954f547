/// Thrown when an operation does not finish within its time limit.
package struct TimeoutError: Error, CustomStringConvertible {
    package var description: String { "the operation timed out" }
}

/// Runs `operation`, cancelling it and throwing `TimeoutError` when it takes longer than `limit`.
package func withTimeout<T: Sendable>(
    _ limit: Duration, operation: @escaping @Sendable () async throws -> T
) async throws -> T {
    try await withThrowingTaskGroup(of: T.self) { group in
        group.addTask { try await operation() }
        group.addTask {
            try await Task.sleep(for: limit)
            throw TimeoutError()
        }
        defer { group.cancelAll() }
        guard let result = try await group.next() else { throw TimeoutError() }
        return result
    }
}
