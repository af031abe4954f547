import Synchronization
import Testing

@testable import ManaSync

/// ``PushLanes``: pushes of one user's app run one at a time, others' alongside, and a lane
/// is gone once nobody uses it.
@Suite struct PushLanesTests {
    /// How many bodies run at once, and the most that ever did.
    final class Counts: Sendable {
        private let state = Mutex((inside: 0, most: 0))
        func enter() { state.withLock { $0.inside += 1; $0.most = max($0.most, $0.inside) } }
        func leave() { state.withLock { $0.inside -= 1 } }
        var most: Int { state.withLock { $0.most } }
    }

    @Test func oneKeyRunsOneAtATimeAndOtherKeysAlongside() async throws {
        let lanes = PushLanes()
        let hot = LogSegments.Key(user: "u", app: "a")
        let counts = Counts()
        try await withThrowingTaskGroup(of: Void.self) { group in
            for _ in 0..<20 {
                group.addTask {
                    try await lanes.serialize(hot) {
                        counts.enter()
                        try await Task.sleep(for: .milliseconds(2))
                        counts.leave()
                    }
                }
            }
            try await group.waitForAll()
        }
        #expect(counts.most == 1)
        #expect(lanes.count == 0)

        // Another key does not wait for a held one.
        let ran = try await lanes.serialize(hot) {
            try await lanes.serialize(LogSegments.Key(user: "u", app: "b")) { lanes.count == 2 }
        }
        #expect(ran)
        #expect(lanes.count == 0)
    }

    @Test func aCancelledWaiterLeavesItsLane() async throws {
        let lanes = PushLanes()
        let key = LogSegments.Key(user: "u", app: "a")
        let release = AsyncStream<Void>.makeStream()
        let holder = Task { try await lanes.serialize(key) { for await _ in release.stream { break } } }
        while lanes.count == 0 { await Task.yield() }
        let waiter = Task { try await lanes.serialize(key) { "ran" } }
        try await Task.sleep(for: .milliseconds(50))
        waiter.cancel()
        await #expect(throws: CancellationError.self) { try await waiter.value }
        release.continuation.yield()
        try await holder.value
        #expect(lanes.count == 0)
    }
}
