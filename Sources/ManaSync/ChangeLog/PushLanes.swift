import HTTPKit
import Synchronization

/// One storing push at a time per user and app in this process; the others wait here, in
/// arrival order, without holding a PostgreSQL connection.
///
/// Pushes of one user's app are serialized anyway: each holds the app's head row from its
/// cursors to its commit (docs/sync.md, "Cursors never skip a change"). Without the lane, every
/// waiting push holds a pooled connection and a backend blocked on that row lock; on each commit
/// all of them wake and race for the row, and pushes of other apps and users wait for a
/// connection behind them. With it, PostgreSQL sees at most one push per head from this
/// process, and the pool serves whoever can make progress. The row lock stays what makes
/// pushes correct (other replicas, and pushes into shared spaces, still meet there).
final class PushLanes: Sendable {
    private struct Lane {
        let semaphore = AsyncSemaphore(permits: 1)
        var users = 0
    }

    private let lanes = Mutex<[LogSegments.Key: Lane]>([:])

    /// Runs `body` alone among the pushes of `key` that go through this lane.
    func serialize<T>(_ key: LogSegments.Key, _ body: () async throws -> T) async throws -> T {
        let semaphore = lanes.withLock { lanes in
            lanes[key, default: Lane()].users += 1
            return lanes[key]!.semaphore
        }
        defer {
            lanes.withLock { lanes in
                lanes[key]!.users -= 1
                if lanes[key]!.users == 0 { lanes[key] = nil }
            }
        }
        return try await semaphore.withPermit(body)
    }

    /// Lanes in use (pushes running or waiting, by key).
    var count: Int { lanes.withLock { $0.count } }
}
