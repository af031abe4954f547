import Foundation
import SharedAuth
import Testing

/// The cache of verified tokens: pure logic, no server.
@Suite struct VerifiedTokenCacheTests {
    let now = Date(timeIntervalSince1970: 1_800_000_000)
    func user(_ id: String, validFor seconds: TimeInterval = 600) -> AuthenticatedUser {
        AuthenticatedUser(id: id, validUntil: now.addingTimeInterval(seconds))
    }

    @Test func aTokenIsAnsweredUntilTheEarlierOfItsEndAndTheLifetime() {
        let cache = VerifiedTokenCache(lifetime: .seconds(60))
        cache.store("a.b.c", user: user("u1"), keySet: 1, now: now)
        #expect(cache.user(for: "a.b.c", keySet: 1, now: now.addingTimeInterval(59))?.id == "u1")
        #expect(cache.user(for: "a.b.c", keySet: 1, now: now.addingTimeInterval(61)) == nil)
        // A token that ends sooner than the lifetime is not answered past its end.
        cache.store("d.e.f", user: user("u2", validFor: 5), keySet: 1, now: now)
        #expect(cache.user(for: "d.e.f", keySet: 1, now: now.addingTimeInterval(5))?.id == "u2")
        #expect(cache.user(for: "d.e.f", keySet: 1, now: now.addingTimeInterval(5.5)) == nil)
    }

    @Test func anotherKeySetOrAnotherTokenIsAMiss() {
        let cache = VerifiedTokenCache()
        cache.store("h.p.sig", user: user("u1"), keySet: 1, now: now)
        #expect(cache.user(for: "h.p.sig", keySet: 2, now: now) == nil)
        #expect(cache.user(for: "h.p.sig", keySet: 1, now: now) == nil, "dropped once seen under another key set")
        cache.store("h.p.sig", user: user("u1"), keySet: 1, now: now)
        // Same signature, another payload: never vouched for by the cached entry.
        #expect(cache.user(for: "h.forged.sig", keySet: 1, now: now) == nil)
    }

    @Test func itNeverHoldsMoreThanItsCapacity() {
        let cache = VerifiedTokenCache(capacity: 100)
        for index in 0..<1_000 { cache.store("t\(index)", user: user("u\(index)"), keySet: 1, now: now) }
        #expect(cache.count <= 100)
        #expect(cache.user(for: "t999", keySet: 1, now: now)?.id == "u999", "the newest entry is kept")
    }
}
