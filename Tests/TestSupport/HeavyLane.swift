import Testing
import Synchronization

/// Tests that load the machine (child processes, chaos with kills, imports of thousands of
/// rows, thousands of sockets) take turns: at most one of them runs at a time, while the
/// light tests run beside it as usual.
///
/// `swift test` starts every test at once. On a 2-core CI runner the heavy ones together
/// starved the light ones: a loopback stand-in took seconds to answer and a best-effort
/// call with a short timeout was lost (stop 29's CI). Time limits and `eventually` bounds
/// count from when a heavy test gets its turn, because the wait happens around the test.
///
/// Use as a suite trait, `@Suite(.heavy, …)`: every test case of the suite takes a turn.
package struct HeavyTrait: SuiteTrait, TestTrait, TestScoping {
    package var isRecursive: Bool { true }

    package func scopeProvider(for test: Test, testCase: Test.Case?) -> Self? {
        // Only around test cases; a turn held by a suite would deadlock its own tests.
        testCase == nil ? nil : self
    }

    package func provideScope(for test: Test, testCase: Test.Case?, performing function: @Sendable () async throws -> Void)
        async throws
    {
        await HeavyLane.shared.acquire()
        defer { HeavyLane.shared.release() }
        try await function()
    }
}

extension Trait where Self == HeavyTrait {
    /// Runs each test case of the suite only when no other heavy test runs.
    package static var heavy: Self { HeavyTrait() }
}

/// A FIFO semaphore of one permit.
package final class HeavyLane: Sendable {
    package static let shared = HeavyLane()
    private let state = Mutex<(busy: Bool, waiting: [CheckedContinuation<Void, Never>])>((false, []))

    func acquire() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let ready = state.withLock { state -> Bool in
                if state.busy {
                    state.waiting.append(continuation)
                    return false
                }
                state.busy = true
                return true
            }
            if ready { continuation.resume() }
        }
    }

    func release() {
        let next = state.withLock { state -> CheckedContinuation<Void, Never>? in
            if state.waiting.isEmpty {
                state.busy = false
                return nil
            }
            return state.waiting.removeFirst()
        }
        next?.resume()
    }
}
