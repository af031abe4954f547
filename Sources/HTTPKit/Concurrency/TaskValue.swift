/// The value of `task`, or `CancellationError` as soon as the waiting task is cancelled,
/// even if `task` ignores cancellation (a pool lease, a lookup other requests share).
/// `cancellingItWhenAbandoned` also cancels `task`; leave it false for a shared one.
package func value<T: Sendable, Failure: Error>(
    of task: Task<T, Failure>, cancellingItWhenAbandoned: Bool = false
) async throws -> T {
    let outcome = OneShot<T>()
    Task(executorPreference: ConnectionExecutor.current) { outcome.resume(with: await task.result.mapError { $0 as any Error }) }
    return try await outcome.value(resumingOnCancel: true) {
        if cancellingItWhenAbandoned { task.cancel() }
    }
}
