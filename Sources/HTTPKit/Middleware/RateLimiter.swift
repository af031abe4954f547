import Foundation
import Synchronization

/// A token bucket per key (client address, user id): `limit` requests per `window`, refilled
/// continuously. In memory, per replica. Keys idle for a full window are forgotten, and at
/// most `maxKeys` are tracked: when a new key finds the table full, expired keys go first,
/// then the least recently used tenth (a forgotten key starts again with a full bucket).
package final class RateLimiter: Sendable {
    private struct Bucket {
        var tokens: Double
        var updated: ContinuousClock.Instant
    }

    package let limit: Int
    package let window: Duration
    package let maxKeys: Int
    private let buckets = Mutex<(entries: [String: Bucket], sweep: ContinuousClock.Instant)>(([:], .now))

    package init(limit: Int, per window: Duration, maxKeys: Int = 100_000) {
        self.limit = limit
        self.window = window
        self.maxKeys = max(1, maxKeys)
    }

    /// Keys tracked now.
    package var trackedKeys: Int { buckets.withLock { $0.entries.count } }

    /// Takes one token for `key`; throws 429 with `Retry-After` (whole seconds until a token is
    /// back) when the bucket is empty.
    package func take(_ key: String, what: String) throws {
        let now = ContinuousClock.now
        let windowSeconds = window.inSeconds
        let rate = Double(limit) / windowSeconds
        let wait: Double? = buckets.withLock { state in
            if now - state.sweep > window {
                state.entries = state.entries.filter { now - $0.value.updated < window }
                state.sweep = now
            }
            if state.entries[key] == nil, state.entries.count >= maxKeys {
                state.entries = state.entries.filter { now - $0.value.updated < window }
                state.sweep = now
                if state.entries.count >= maxKeys {
                    let evict = state.entries.count - maxKeys + max(1, maxKeys / 10)
                    for (old, _) in state.entries.sorted(by: { $0.value.updated < $1.value.updated }).prefix(evict) {
                        state.entries[old] = nil
                    }
                }
            }
            var bucket = state.entries[key] ?? Bucket(tokens: Double(limit), updated: now)
            let elapsed = now - bucket.updated
            bucket.tokens = min(Double(limit), bucket.tokens + rate * elapsed.inSeconds)
            bucket.updated = now
            defer { state.entries[key] = bucket }
            guard bucket.tokens >= 1 else { return (1 - bucket.tokens) / rate }
            bucket.tokens -= 1
            return nil
        }
        if let wait {
            let seconds = max(1, Int(wait.rounded(.up)))
            throw APIError(
                .tooManyRequests, message: "too many \(what); try again in \(seconds) s",
                details: ["retryAfter": .number(Double(seconds))], headers: [.retryAfter: String(seconds)])
        }
    }
}
