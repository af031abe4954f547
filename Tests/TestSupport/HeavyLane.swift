import HTTPKit
import Testing

/// Tests that load the machine (child processes, chaos with kills, imports of thousands of
/// rows, thousands of sockets) take turns: at most one of them runs at a time, while the
/// light tests run beside it as usual.
///
/// `swift test` starts every test at once. On a 2-core CI runner the heavy ones together
/// starved the light ones: a loopback stand-in took seconds to answer and a best-effort
/// call with a short timeout was lost (stop 29's CI). `eventually` bounds count from the
/// test's turn; a suite's `.timeLimit` includes the wait (Swift Testing applies time limits
/// around scoping traits), so the heavy suites have 15 minutes or more.
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
        try await Self.lane.withPermit(function)
    }

    /// One heavy test case at a time.
    private static let lane = AsyncSemaphore(permits: 1)
}

extension Trait where Self == HeavyTrait {
    /// Runs each test case of the suite only when no other heavy test runs.
    package static var heavy: Self { HeavyTrait() }
}
