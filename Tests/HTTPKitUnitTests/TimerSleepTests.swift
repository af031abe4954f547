import HTTPKit
import Testing

/// `timerSleep(for:)`: the sleep behind every timeout that is usually cut short. It must end
/// at its time, and a cancellation (also one that came before it began) must end it at once.
@Suite struct TimerSleepTests {
    @Test func aSleepEndsAtItsTime() async {
        let clock = ContinuousClock()
        let start = clock.now
        let timePassed = await timerSleep(for: .milliseconds(80))
        #expect(timePassed)
        #expect(clock.now - start >= .milliseconds(80))
    }

    @Test func aCancelledSleepEndsAtOnceAndSaysSo() async {
        let clock = ContinuousClock()
        let sleeper = Task { await timerSleep(for: .seconds(60)) }
        try? await Task.sleep(for: .milliseconds(50))
        let start = clock.now
        sleeper.cancel()
        let timePassed = await sleeper.value
        #expect(!timePassed)
        #expect(clock.now - start < .seconds(5))
    }

    @Test func aSleepBegunAfterItsTaskWasCancelledDoesNotWait() async {
        let clock = ContinuousClock()
        let start = clock.now
        let sleeper = Task {
            withUnsafeCurrentTask { $0?.cancel() }
            return await timerSleep(for: .seconds(60))
        }
        #expect(await sleeper.value == false)
        #expect(clock.now - start < .seconds(5))
    }

    @Test func aTimeoutStillTimesOutAndAQuickOperationStillAnswers() async throws {
        await #expect(throws: TimeoutError.self) {
            try await withTimeout(.milliseconds(50)) { try await Task.sleep(for: .seconds(30)) }
        }
        #expect(try await withTimeout(.seconds(30)) { 42 } == 42)
    }
}
