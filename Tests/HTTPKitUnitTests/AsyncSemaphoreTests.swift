import HTTPKit
import Synchronization
import Testing

@Suite struct AsyncSemaphoreTests {
    /// How many bodies run now, and the most at once.
    final class Running: Sendable {
        let counts = Mutex((now: 0, most: 0))
        func enter() { counts.withLock { $0.now += 1; $0.most = max($0.most, $0.now) } }
        func leave() { counts.withLock { $0.now -= 1 } }
        var most: Int { counts.withLock { $0.most } }
    }

    @Test func noMoreThanThePermitsRunAtOnce() async throws {
        let semaphore = AsyncSemaphore(permits: 2)
        let running = Running()
        try await withThrowingTaskGroup(of: Void.self) { group in
            for _ in 0..<20 {
                group.addTask {
                    try await semaphore.withPermit {
                        running.enter()
                        defer { running.leave() }
                        try await Task.sleep(for: .milliseconds(5))
                    }
                }
            }
            try await group.waitForAll()
        }
        #expect(running.most == 2)
    }

    /// A cancelled waiter leaves the queue with CancellationError and does not take the
    /// permit from the next one.
    @Test func aCancelledWaiterLeavesTheQueue() async throws {
        let semaphore = AsyncSemaphore(permits: 1)
        let (release, releaser) = AsyncStream<Void>.makeStream()
        let holder = Task { try await semaphore.withPermit { for await _ in release { break } } }
        try await Task.sleep(for: .milliseconds(50))
        let cancelled = Task { try await semaphore.withPermit { "ran" } }
        let next = Task { try await semaphore.withPermit { "next" } }
        try await Task.sleep(for: .milliseconds(50))
        cancelled.cancel()
        await #expect(throws: CancellationError.self) { try await cancelled.value }
        releaser.yield()
        try await holder.value
        #expect(try await next.value == "next")
    }

    @Test func anAlreadyCancelledTaskDoesNotWait() async throws {
        let semaphore = AsyncSemaphore(permits: 0)
        let task = Task {
            withUnsafeCurrentTask { $0?.cancel() }
            return try await semaphore.withPermit { 1 }
        }
        await #expect(throws: CancellationError.self) { try await task.value }
    }
}
