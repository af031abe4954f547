import Synchronization

/// Calls of a scripted source that wait until the test releases them (single-flight tests).
final class HeldCalls: Sendable {
    private let waiting = Mutex<[CheckedContinuation<Void, Never>]>([])

    /// How many calls are waiting.
    var count: Int { waiting.withLock { $0.count } }

    /// Waits until ``release()``.
    func hold() async {
        await withCheckedContinuation { continuation in waiting.withLock { $0.append(continuation) } }
    }

    /// Lets every waiting call go on.
    func release() {
        let released = waiting.withLock { waiting in
            defer { waiting = [] }
            return waiting
        }
        for continuation in released { continuation.resume() }
    }
}
