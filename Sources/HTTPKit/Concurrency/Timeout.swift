import NIOCore
import NIOPosix
import Synchronization

/// Thrown when an operation does not finish within its time limit.
package struct TimeoutError: Error, CustomStringConvertible {
    package var description: String { "the operation timed out" }
}

/// Runs `operation`, cancelling it and throwing `TimeoutError` when it takes longer than `limit`.
/// Waits for the cancelled operation to end, as a task group would.
///
/// Every request runs in one (the request deadline, and the body's), and nearly every one
/// ends long before its limit: so the operation runs in one task on the caller's event loop
/// (``ConnectionExecutor``) and the limit is a NIO timer that cancels it, removed when the
/// operation ends. The previous shape, a task group racing the operation against a sleeping
/// child task, cost a group, a second task and a continuation per call.
package func withTimeout<T: Sendable>(
    _ limit: Duration, operation: @escaping @Sendable () async throws -> T
) async throws -> T {
    let work = Task(executorPreference: ConnectionExecutor.current) { try await operation() }
    let timedOut = TimedOut()
    let timer = MultiThreadedEventLoopGroup.singleton.any().scheduleTask(in: TimeAmount(limit)) {
        timedOut.flag.store(true, ordering: .releasing)
        work.cancel()
    }
    let result = await withTaskCancellationHandler { await work.result } onCancel: { work.cancel() }
    timer.cancel()
    if timedOut.flag.load(ordering: .acquiring) { throw TimeoutError() }
    return try result.get()
}

private final class TimedOut: Sendable {
    let flag = Atomic(false)
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
