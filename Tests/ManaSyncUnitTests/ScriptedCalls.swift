import Synchronization

/// The script of a stand-in source in the unit tests: it answers, fails, or holds calls until
/// released (single-flight tests), and counts the calls per user.
final class ScriptedCalls: Sendable {
    enum Mode: Sendable { case answer, fail, hold }

    private struct State {
        var mode = Mode.answer
        var calls: [String: Int] = [:]
        var waiting: [CheckedContinuation<Void, Never>] = []
    }

    private let state = Mutex(State())

    func set(_ mode: Mode) { state.withLock { $0.mode = mode } }

    /// Calls for `user`, or for everyone.
    func calls(_ user: String? = nil) -> Int {
        state.withLock { state in user.map { state.calls[$0, default: 0] } ?? state.calls.values.reduce(0, +) }
    }

    /// How many calls are held.
    var waiting: Int { state.withLock { $0.waiting.count } }

    /// Lets every held call go on.
    func release() {
        let released = state.withLock { state in
            defer { state.waiting = [] }
            return state.waiting
        }
        for continuation in released { continuation.resume() }
    }

    /// Counts a call for `user` and holds it when the mode is `hold`; false when the mode at
    /// the call was `fail`.
    func enter(_ user: String) async -> Bool {
        let mode = state.withLock { state -> Mode in
            state.calls[user, default: 0] += 1
            return state.mode
        }
        if mode == .hold {
            await withCheckedContinuation { continuation in state.withLock { $0.waiting.append(continuation) } }
        }
        return mode != .fail
    }
}
