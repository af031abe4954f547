import NIOCore
import NIOPosix
import Synchronization

/// Sleeps for `limit`: true when the time passed, false when the task was cancelled first.
///
/// For waits that are usually cut short (a request's deadline, a write's timeout, a wake-up's
/// limit). Swift's `Task.sleep` keeps a cancelled sleep's timer and task allocation until its
/// deadline would have come (swiftlang/swift#60441), about 0.5 KB each: with a 30-second
/// request deadline and the pool's keep-alive and idle timers (30 and 60 s, see
/// `DatabaseURL.clientConfiguration`), mana-sync's heap grew 3.8 → 98 MB in 40 s of pushes at
/// 1,100–1,400 requests a second (docs/benchmarks.md, session 33). This sleep is a NIO timer that a cancellation removes,
/// freeing it at once.
package func timerSleep(for limit: Duration) async -> Bool {
    let sleep = TimerSleep()
    return await withTaskCancellationHandler {
        await withCheckedContinuation { continuation in
            sleep.start(continuation, after: limit)
        }
    } onCancel: {
        sleep.finish(timePassed: false)
    }
}

private final class TimerSleep: Sendable {
    private let state = Mutex<(continuation: CheckedContinuation<Bool, Never>?, timer: Scheduled<Void>?, finished: Bool)>((nil, nil, false))

    func start(_ continuation: CheckedContinuation<Bool, Never>, after limit: Duration) {
        let cancelledAlready = state.withLock { state -> Bool in
            guard !state.finished else { return true }
            state.continuation = continuation
            return false
        }
        if cancelledAlready { return continuation.resume(returning: false) }
        let timer = MultiThreadedEventLoopGroup.singleton.any().scheduleTask(in: TimeAmount(limit)) { [self] in
            finish(timePassed: true)
        }
        let cancelledMeanwhile = state.withLock { state -> Bool in
            if state.finished { return true }
            state.timer = timer
            return false
        }
        if cancelledMeanwhile { timer.cancel() }
    }

    /// Resumes the sleeper once; a cancellation also removes the timer.
    func finish(timePassed: Bool) {
        let (continuation, timer) = state.withLock { state -> (CheckedContinuation<Bool, Never>?, Scheduled<Void>?) in
            guard !state.finished else { return (nil, nil) }
            state.finished = true
            defer { state.continuation = nil; state.timer = nil }
            return (state.continuation, state.timer)
        }
        if !timePassed { timer?.cancel() }
        continuation?.resume(returning: timePassed)
    }
}
