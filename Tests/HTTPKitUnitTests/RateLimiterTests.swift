import HTTPKit
import Testing

@Suite struct RateLimiterTests {
    /// Attack: one request per made-up key (addresses are cheap with IPv6) grew the table
    /// without bound until the window passed. Now at most `maxKeys` are tracked; when full,
    /// expired keys go first, then the least recently used.
    @Test func theTableOfKeysIsBounded() throws {
        let limiter = RateLimiter(limit: 1, per: .seconds(60), maxKeys: 10)
        for i in 0..<1_000 { try limiter.take("address:\(i)", what: "tests") }
        #expect(limiter.trackedKeys <= 10)
        // The most recent keys are still limited.
        #expect(throws: APIError.self) { try limiter.take("address:999", what: "tests") }
    }

    @Test func aKeyIsLimitedWithinItsWindow() throws {
        let limiter = RateLimiter(limit: 2, per: .seconds(60))
        try limiter.take("k", what: "tests")
        try limiter.take("k", what: "tests")
        #expect(throws: APIError.self) { try limiter.take("k", what: "tests") }
        try limiter.take("other", what: "tests")
    }
}
