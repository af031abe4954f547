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
            // Not `Task.sleep`: nearly every deadline is cancelled, and a cancelled
            // `Task.sleep` holds its memory until the deadline (``timerSleep(for:)``).
            guard await timerSleep(for: limit) else { throw CancellationError() }
            throw TimeoutError()
        }
        defer { group.cancelAll() }
        guard let result = try await group.next() else { throw TimeoutError() }
        return result
    }
}

/// Whether `task` ends within `limit`. Never waits longer than `limit`, even for a task that
/// ignores cancellation (unlike ``withTimeout(_:operation:)``, which must wait for its child).
package func finishes<Success: Sendable>(_ task: Task<Success, any Error>, within limit: Duration) async -> Bool {
    let (results, continuation) = AsyncStream<Bool>.makeStream()
    Task {
        _ = await task.result
        continuation.yield(true)
    }
    let timer = Task {
        if await timerSleep(for: limit) { continuation.yield(false) }
    }
    var iterator = results.makeAsyncIterator()
    let finished = await iterator.next() ?? false
    timer.cancel()
    return finished
}
