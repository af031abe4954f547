import Foundation
import HTTPKit
import Synchronization
import Testing

/// One wake-up ends one wait: a waiter that loops does not spin afterwards (the sleeping
/// timer of a wait that ended early must not count as a wake-up for the next one).
@Suite struct WakeSignalTests {
    @Test func oneWakeEndsOneWaitAndNoMore() async {
        let signal = WakeSignal()
        let returns = Mutex(0)
        let waiter = Task {
            for _ in 0..<1_000 {
                await signal.wait(upTo: .seconds(30))
                returns.withLock { $0 += 1 }
                if Task.isCancelled { return }
            }
        }
        try? await Task.sleep(for: .milliseconds(50))
        signal.wake()
        // The wake-up ends a wait: within seconds even on a machine busy with the other suites
        // (a fixed 300 ms was not always enough under CI's load).
        let clock = ContinuousClock()
        let deadline = clock.now + .seconds(20)
        while returns.withLock({ $0 }) == 0, clock.now < deadline { try? await Task.sleep(for: .milliseconds(10)) }
        #expect(returns.withLock { $0 } >= 1)
        // And no more: a waiter that spun would have returned hundreds of times by now.
        try? await Task.sleep(for: .milliseconds(300))
        // One wake-up: one return (at most one more, a wake racing the timer's end).
        #expect(returns.withLock { $0 } <= 2)
        waiter.cancel()
        _ = await waiter.value
    }

    @Test func aWaitEndsAtItsLimitAndOnCancellation() async {
        let signal = WakeSignal()
        let clock = ContinuousClock()
        let start = clock.now
        await signal.wait(upTo: .milliseconds(100))
        #expect(clock.now - start >= .milliseconds(100))
        let waiter = Task { await signal.wait(upTo: .seconds(60)) }
        try? await Task.sleep(for: .milliseconds(50))
        waiter.cancel()
        let ended = Task {
            await waiter.value
            return true
        }
        try? await Task.sleep(for: .seconds(2))
        #expect(await ended.value)
        // A limit that ends before the wait begins still ends it.
        for _ in 0..<200 { await signal.wait(upTo: .zero) }
        // A wake before the wait is kept for it.
        signal.wake()
        let early = clock.now
        await signal.wait(upTo: .seconds(30))
        #expect(clock.now - early < .seconds(5))
    }

    /// The wait without a limit: a wake-up before it begins ends it at once, one during it
    /// ends it, and cancellation ends it.
    @Test func aWaitWithoutLimitEndsOnAWakeUpOrOnCancellation() async {
        let signal = WakeSignal()
        signal.wake()
        await signal.wait()  // the wake-up that came first
        let woken = Task { await signal.wait() }
        try? await Task.sleep(for: .milliseconds(50))
        signal.wake()
        await woken.value
        let cancelled = Task { await signal.wait() }
        try? await Task.sleep(for: .milliseconds(50))
        cancelled.cancel()
        await cancelled.value
        // Nothing was left behind for the next wait: it waits until woken.
        let next = Task { await signal.wait() }
        try? await Task.sleep(for: .milliseconds(200))
        let ended = Mutex(false)
        let watcher = Task {
            await next.value
            ended.withLock { $0 = true }
        }
        try? await Task.sleep(for: .milliseconds(100))
        #expect(!ended.withLock { $0 })
        signal.wake()
        await watcher.value
        #expect(ended.withLock { $0 })
    }
}
