import Synchronization

/// A one-waiter wake-up: `wait(upTo:)` returns after its limit, on `wake()` (also one that
/// came while nobody waited), or on cancellation. The outbox sender and the SSE streams
/// sleep on it.
package final class WakeSignal: Sendable {
    /// A wake-up for the next wait; the waiter; whether the current wait's time is up (or it
    /// was cancelled) before it began waiting.
    private let state = Mutex<(pending: Bool, waiter: CheckedContinuation<Void, Never>?, ended: Bool)>((false, nil, false))

    package init() {}

    package func wake() {
        let waiter = state.withLock { state -> CheckedContinuation<Void, Never>? in
            guard let waiter = state.waiter else {
                state.pending = true
                return nil
            }
            state.waiter = nil
            return waiter
        }
        waiter?.resume()
    }

    /// Returns after `limit`, on a wake-up, or on cancellation, whichever comes first.
    ///
    /// The timer only ends the wait it belongs to: it never leaves a wake-up behind for the
    /// next wait (it used to, when a wake-up ended the wait first and the cancelled timer then
    /// called ``wake()``: every later wait returned at once, and a loop around it spun).
    package func wait(upTo limit: Duration) async {
        state.withLock { $0.ended = false }
        await withTaskGroup(of: Void.self) { group in
            group.addTask {
                // Cancelled when the wait ended otherwise: then nothing is left to end (and,
                // unlike `Task.sleep`, nothing is kept until the limit: ``timerSleep(for:)``).
                if await timerSleep(for: limit) { self.endWait() }
            }
            await waitForWake()
            group.cancelAll()
        }
    }

    /// Returns on a wake-up (also one that came while nobody waited) or on cancellation, with
    /// no timer: for a waiter that a wake-up or its cancellation always ends (the push
    /// notifier, woken by each push and at shutdown), and that waits many times a second
    /// under load, where a timer task per wait cost more than the wait.
    package func wait() async {
        state.withLock { $0.ended = false }
        await waitForWake()
    }

    private func waitForWake() async {
        await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                let now = state.withLock { state -> Bool in
                    if state.pending || state.ended || Task.isCancelled {
                        state.pending = false
                        state.ended = false
                        return true
                    }
                    state.waiter = continuation
                    return false
                }
                if now { continuation.resume() }
            }
        } onCancel: {
            endWait()
        }
    }

    /// Ends the current wait (resumes its waiter, or marks it ended if it has not begun
    /// waiting yet) without leaving a wake-up for a later wait.
    private func endWait() {
        let waiter = state.withLock { state -> CheckedContinuation<Void, Never>? in
            defer { state.waiter = nil }
            if state.waiter == nil { state.ended = true }
            return state.waiter
        }
        waiter?.resume()
    }
}
