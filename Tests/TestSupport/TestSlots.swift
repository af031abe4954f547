import Foundation
import Synchronization

/// How many services under test run at once in this process. Swift Testing starts every test
/// at once; on a 2-core machine that is busy with other work (a CI runner building beside
/// the tests) forty live services starve each other until their own deadlines fire. Tests
/// that start a service take a slot first; the others wait (not counted against anything
/// but their suite's time limit).
package enum TestSlots {
    /// Three per core, at least six (`TEST_SERVICE_SLOTS` overrides).
    package static let count = ProcessInfo.processInfo.environment["TEST_SERVICE_SLOTS"].flatMap(Int.init)
        ?? max(6, ProcessInfo.processInfo.activeProcessorCount * 3)

    private static let slots = AsyncSemaphore(permits: count)

    /// Runs `body` holding one slot.
    package static func withSlot<T>(_ body: () async throws -> T) async throws -> T {
        try await slots.withPermit(body)
    }
}

/// A FIFO counting semaphore for tasks: waiting suspends, it never blocks a thread.
package final class AsyncSemaphore: Sendable {
    private let state: Mutex<(free: Int, waiters: [CheckedContinuation<Void, Never>])>

    package init(permits: Int) {
        state = Mutex((permits, []))
    }

    /// Runs `body` holding one permit.
    package func withPermit<T>(_ body: () async throws -> T) async throws -> T {
        await acquire()
        defer { release() }
        return try await body()
    }

    private func acquire() async {
        await withCheckedContinuation { continuation in
            let now = state.withLock { state in
                if state.free > 0 {
                    state.free -= 1
                    return true
                }
                state.waiters.append(continuation)
                return false
            }
            if now { continuation.resume() }
        }
    }

    private func release() {
        let next = state.withLock { state -> CheckedContinuation<Void, Never>? in
            if state.waiters.isEmpty {
                state.free += 1
                return nil
            }
            return state.waiters.removeFirst()
        }
        next?.resume()
    }
}
