import HTTPKit
import Logging
import Synchronization
import Testing

@testable import ManaSync

/// The billing gate's cache, single flight, invalidation and circuit breaker, against a
/// scripted status source (the HTTP path to mana-credits is covered by BillingGateTests).
@Suite struct BillingGateLogicTests {
    /// Answers as its script says; inactive users as told.
    final class ScriptedSource: SubscriptionStatusSource {
        let script = ScriptedCalls()
        private let inactive = Mutex<Set<String>>([])

        func setInactive(_ user: String, _ inactive: Bool) {
            self.inactive.withLock { if inactive { $0.insert(user) } else { $0.remove(user) } }
        }

        func isActive(userID: String) async -> Result<Bool, ServiceClientError> {
            guard await script.enter(userID) else { return .failure(.unreachable("scripted")) }
            return .success(inactive.withLock { !$0.contains(userID) })
        }
    }

    static func gate(_ source: ScriptedSource, _ adjust: (inout BillingSettings) -> Void = { _ in }) -> BillingGate {
        var settings = BillingSettings(creditsURL: "http://unused.invalid")
        adjust(&settings)
        return BillingGate(settings: settings, source: source, metrics: ServiceMetrics(), logger: Logger(label: "test"))
    }

    @Test func answersAreCachedPerUserActiveAndInactive() async {
        let source = ScriptedSource()
        source.setInactive("lapsed", true)
        let gate = Self.gate(source)
        for _ in 0..<5 {
            #expect(await gate.decide(userID: "paying") == .allowed)
            #expect(await gate.decide(userID: "lapsed") == .denied)
        }
        #expect(source.script.calls("paying") == 1 && source.script.calls("lapsed") == 1)
    }

    @Test func anInactiveAnswerLivesOnlyForItsTTL() async throws {
        let source = ScriptedSource()
        source.setInactive("waiting", true)
        let gate = Self.gate(source) { $0.inactiveTTL = .milliseconds(200) }
        #expect(await gate.decide(userID: "waiting") == .denied)
        source.setInactive("waiting", false)
        try await Task.sleep(for: .milliseconds(300))
        #expect(await gate.decide(userID: "waiting") == .allowed)
        #expect(source.script.calls("waiting") == 2)
    }

    @Test func concurrentLookupsOfOneUserShareOneCall() async throws {
        let source = ScriptedSource()
        source.script.set(.hold)
        let gate = Self.gate(source)
        async let decisions = withTaskGroup(of: BillingGate.Decision.self) { group in
            for _ in 0..<50 { group.addTask { await gate.decide(userID: "crowd") } }
            return await group.reduce(into: [BillingGate.Decision]()) { $0.append($1) }
        }
        while source.script.waiting == 0 { try await Task.sleep(for: .milliseconds(5)) }
        try await Task.sleep(for: .milliseconds(50))
        source.script.release()
        #expect(await decisions.allSatisfy { $0 == .allowed })
        #expect(source.script.calls("crowd") == 1)
    }

    @Test func anAnswerFetchedAcrossAnInvalidationIsNotCached() async throws {
        let source = ScriptedSource()
        source.script.set(.hold)
        source.setInactive("newcomer", true)
        let gate = Self.gate(source)
        async let first = gate.decide(userID: "newcomer")
        while source.script.waiting == 0 { try await Task.sleep(for: .milliseconds(5)) }
        // The user activates while the old answer is on its way.
        source.setInactive("newcomer", false)
        gate.invalidate(userID: "newcomer")
        source.script.set(.answer)
        source.script.release()
        _ = await first
        #expect(await gate.decide(userID: "newcomer") == .allowed)
        #expect(source.script.calls("newcomer") == 2)
    }

    @Test func theBreakerOpensAfterItsThresholdSkipsCallsThenProbesAndCloses() async throws {
        let source = ScriptedSource()
        source.script.set(.fail)
        source.setInactive("probe", true)
        let gate = Self.gate(source) {
            $0.breakerThreshold = 3
            $0.breakerCooldown = .milliseconds(300)
        }
        for user in 0..<3 { #expect(await gate.decide(userID: "u\(user)") == .failedOpen) }
        #expect(source.script.calls() == 3)
        // Open: requests pass at once, nothing is asked.
        for user in 3..<10 { #expect(await gate.decide(userID: "u\(user)") == .failedOpen) }
        #expect(source.script.calls() == 3)
        // After the cool-down one probe goes out; it answers, the breaker closes, answers count.
        source.script.set(.answer)
        try await Task.sleep(for: .milliseconds(400))
        #expect(await gate.decide(userID: "probe") == .denied)
        #expect(await gate.decide(userID: "someone") == .allowed)
        #expect(source.script.calls() == 5)
    }

    @Test func aFailedProbeOpensTheBreakerAgain() async throws {
        let source = ScriptedSource()
        source.script.set(.fail)
        let gate = Self.gate(source) {
            $0.breakerThreshold = 1
            $0.breakerCooldown = .milliseconds(200)
        }
        #expect(await gate.decide(userID: "a") == .failedOpen)
        try await Task.sleep(for: .milliseconds(300))
        #expect(await gate.decide(userID: "b") == .failedOpen)  // the probe, failing
        #expect(await gate.decide(userID: "c") == .failedOpen)  // open again: not asked
        #expect(source.script.calls() == 2)
    }

    @Test func theCacheStaysWithinItsCapacity() async {
        let source = ScriptedSource()
        let gate = Self.gate(source) { $0.cacheCapacity = 20 }
        for user in 0..<100 {
            #expect(await gate.decide(userID: "user-\(user)") == .allowed)
            #expect(gate.cachedUsers <= 20)
        }
    }

    @Test func theDefaultsAreFiveMinutesActiveAndThirtySecondsInactive() {
        var reader = ConfigReader(environment: [:])
        let settings = BillingSettings(reading: &reader)
        #expect(reader.problems.isEmpty)
        #expect(settings.creditsURL == "http://localhost:3061")
        #expect(settings.timeout == .seconds(2))
        #expect(settings.activeTTL == .seconds(300))
        #expect(settings.inactiveTTL == .seconds(30))
    }
}
