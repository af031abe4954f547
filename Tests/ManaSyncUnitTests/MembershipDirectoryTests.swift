import HTTPKit
import Logging
import Synchronization
import Testing

@testable import ManaSync

/// The membership cache (spaces.md section 9) against a scripted source and a hand-driven
/// clock: fresh answers, the failure pause, stale answers while mana-auth is down, single
/// flight, invalidation and the size bound. The HTTP path to mana-auth is MembershipTests'.
@Suite struct MembershipDirectoryTests {
    /// Answers as its script says, with the roles set per user.
    final class ScriptedSource: MembershipSource {
        let script = ScriptedCalls()
        private let roles = Mutex<[String: [String: String]]>([:])

        func set(_ user: String, _ roles: [String: String]) { self.roles.withLock { $0[user] = roles } }

        func memberships(userID: String) async -> Result<Memberships, ServiceClientError> {
            guard await script.enter(userID) else { return .failure(.unreachable("scripted")) }
            return .success(Memberships(roles: roles.withLock { $0[userID] ?? [:] }))
        }
    }

    final class ManualClock: Sendable {
        private let time = Mutex(Duration.zero)
        var now: Duration { time.withLock { $0 } }
        func advance(_ by: Duration) { time.withLock { $0 += by } }
    }

    static func directory(_ source: ScriptedSource, _ clock: ManualClock, capacity: Int = 100) -> MembershipDirectory {
        var settings = MembershipSettings(authURL: "http://unused.invalid")
        settings.capacity = capacity
        return MembershipDirectory(settings: settings, source: source, metrics: ServiceMetrics(), logger: Logger(label: "test"), now: { clock.now })
    }

    static let family = Memberships(roles: ["org_fam": "member"])

    @Test func anAnswerServesForSixtySecondsThenIsAskedAgain() async {
        let (source, clock) = (ScriptedSource(), ManualClock())
        source.set("u_b", ["org_fam": "member"])
        let directory = Self.directory(source, clock)
        #expect(await directory.lookup(userID: "u_b") == .fresh(Self.family))
        clock.advance(.seconds(59))
        #expect(await directory.lookup(userID: "u_b") == .fresh(Self.family))
        #expect(source.script.calls("u_b") == 1)
        source.set("u_b", ["org_fam": "viewer"])
        clock.advance(.seconds(2))
        #expect(await directory.lookup(userID: "u_b") == .fresh(Memberships(roles: ["org_fam": "viewer"])))
        #expect(source.script.calls("u_b") == 2)
    }

    @Test func whileMana_authIsDownTheLastAnswerServesForFifteenMinutesThenNothing() async {
        let (source, clock) = (ScriptedSource(), ManualClock())
        source.set("u_b", ["org_fam": "member"])
        let directory = Self.directory(source, clock)
        _ = await directory.lookup(userID: "u_b")
        source.script.set(.fail)
        clock.advance(.seconds(61))
        #expect(await directory.lookup(userID: "u_b") == .stale(Self.family))
        // The failure pauses calls for 10 s: answered from the stale entry without asking.
        clock.advance(.seconds(5))
        #expect(await directory.lookup(userID: "u_b") == .stale(Self.family))
        #expect(source.script.calls("u_b") == 2)
        clock.advance(.seconds(6))
        #expect(await directory.lookup(userID: "u_b") == .stale(Self.family))
        #expect(source.script.calls("u_b") == 3)
        clock.advance(.seconds(900))
        #expect(await directory.lookup(userID: "u_b") == .unavailable)
        // A user never answered has no fallback at all.
        #expect(await directory.lookup(userID: "u_new") == .unavailable)
        source.script.set(.answer)
        clock.advance(.seconds(11))
        #expect(await directory.lookup(userID: "u_b") == .fresh(Self.family))
    }

    @Test func concurrentLookupsOfOneUserShareOneCall() async {
        let (source, clock) = (ScriptedSource(), ManualClock())
        source.set("u_b", ["org_fam": "member"])
        source.script.set(.hold)
        let directory = Self.directory(source, clock)
        async let lookups = withTaskGroup(of: MembershipDirectory.Lookup.self) { group in
            for _ in 0..<20 { group.addTask { await directory.lookup(userID: "u_b") } }
            return await group.reduce(into: []) { $0.append($1) }
        }
        while source.script.waiting == 0 { await Task.yield() }
        source.script.release()
        #expect(await lookups == Array(repeating: .fresh(Self.family), count: 20))
        #expect(source.script.calls("u_b") == 1)
    }

    @Test func anInvalidationForgetsTheAnswerAndItsStaleFallback() async {
        let (source, clock) = (ScriptedSource(), ManualClock())
        source.set("u_b", ["org_fam": "member"])
        let directory = Self.directory(source, clock)
        _ = await directory.lookup(userID: "u_b")
        source.set("u_b", [:])
        directory.invalidate(userIDs: ["u_b"])
        #expect(await directory.lookup(userID: "u_b") == .fresh(Memberships(roles: [:])))
        // Removed while mana-auth is down: no stale answer keeps the old space readable.
        directory.invalidate(userIDs: ["u_b"])
        source.script.set(.fail)
        #expect(await directory.lookup(userID: "u_b") == .unavailable)
    }

    @Test func anAnswerFetchedAcrossAnInvalidationIsNotKept() async {
        let (source, clock) = (ScriptedSource(), ManualClock())
        source.set("u_b", ["org_fam": "member"])
        source.script.set(.hold)
        let directory = Self.directory(source, clock)
        async let first = directory.lookup(userID: "u_b")
        while source.script.waiting == 0 { await Task.yield() }
        directory.invalidate(userIDs: ["u_b"])
        source.script.set(.answer)
        source.script.release()
        _ = await first
        #expect(directory.cachedUsers == 0)
        _ = await directory.lookup(userID: "u_b")
        #expect(source.script.calls("u_b") == 2)
    }

    @Test func theCacheKeepsTheMostRecentlyUsedUsers() async {
        let (source, clock) = (ScriptedSource(), ManualClock())
        let directory = Self.directory(source, clock, capacity: 100)
        _ = await directory.lookup(userID: "kept")
        for index in 0..<150 {
            clock.advance(.milliseconds(10))
            _ = await directory.lookup(userID: "user-\(index)")
            _ = await directory.lookup(userID: "kept")
        }
        #expect(directory.cachedUsers <= 100)
        #expect(source.script.calls("kept") == 1)
        _ = await directory.lookup(userID: "user-0")
        #expect(source.script.calls("user-0") == 2)
    }

    @Test func rolesDecideWhoWrites() {
        let memberships = Memberships(roles: ["org_a": "owner", "org_b": "viewer", "org_c": "custom"])
        let writers: Set<String> = ["owner", "admin", "member"]
        #expect(memberships.canWrite("org_a", writeRoles: writers))
        #expect(!memberships.canWrite("org_b", writeRoles: writers) && memberships.canRead("org_b"))
        #expect(!memberships.canWrite("org_c", writeRoles: writers) && memberships.canRead("org_c"))
        #expect(!memberships.canRead("org_d"))
    }
}
