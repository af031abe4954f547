import HTTPKit

/// How mana-sync asks mana-credits whether a user's Cloud Sync subscription is active.
struct BillingSettings: Sendable {
    /// mana-credits' base URL.
    var creditsURL: String
    /// The longest a status call may take before the request fails open.
    var timeout: Duration = .seconds(2)
    /// How long an "active" answer is trusted.
    var activeTTL: Duration = .seconds(300)
    /// How long an "inactive" answer is trusted (short: activation must take effect soon
    /// even when the invalidation call is lost).
    var inactiveTTL: Duration = .seconds(30)
    /// The most users whose answers are cached.
    var cacheCapacity: Int = 100_000
    /// Consecutive failed calls that open the circuit breaker.
    var breakerThreshold: Int = 5
    /// How long the open breaker skips calls before one probe is let through.
    var breakerCooldown: Duration = .seconds(30)

    enum Variables {
        static let creditsURL = EnvironmentVariable(
            "MANA_CREDITS_URL", default: "http://localhost:3061", help: "mana-credits, asked whether a user's Cloud Sync is active")
        static let timeout = EnvironmentVariable(
            "SYNC_BILLING_TIMEOUT", default: "2", help: "seconds a subscription check may take before the request is let through")
        static let activeTTL = EnvironmentVariable(
            "SYNC_BILLING_CACHE_TTL", default: "300", help: "seconds an active subscription answer is cached")
        static let inactiveTTL = EnvironmentVariable(
            "SYNC_BILLING_NEGATIVE_TTL", default: "30", help: "seconds an inactive subscription answer is cached")
        static let cacheCapacity = EnvironmentVariable(
            "SYNC_BILLING_CACHE_SIZE", default: "100000", help: "most users whose subscription answers are cached")
        static let breakerThreshold = EnvironmentVariable(
            "SYNC_BILLING_BREAKER_THRESHOLD", default: "5", help: "consecutive failed checks that stop calls to mana-credits")
        static let breakerCooldown = EnvironmentVariable(
            "SYNC_BILLING_BREAKER_COOLDOWN", default: "30", help: "seconds without calls to mana-credits once the breaker is open")

        static let all = [creditsURL, timeout, activeTTL, inactiveTTL, cacheCapacity, breakerThreshold, breakerCooldown]
    }

    init(creditsURL: String) {
        self.creditsURL = creditsURL
    }

    init(reading reader: inout ConfigReader) {
        creditsURL = reader.url(Variables.creditsURL)
        timeout = reader.seconds(Variables.timeout, in: 0.05...60)
        activeTTL = reader.seconds(Variables.activeTTL, in: 0...86_400)
        inactiveTTL = reader.seconds(Variables.inactiveTTL, in: 0...3_600)
        cacheCapacity = reader.int(Variables.cacheCapacity, in: 1...10_000_000)
        breakerThreshold = reader.int(Variables.breakerThreshold, in: 1...1_000)
        breakerCooldown = reader.seconds(Variables.breakerCooldown, in: 0.1...3_600)
    }
}
