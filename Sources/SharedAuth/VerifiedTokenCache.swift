import Foundation
import Synchronization

/// Tokens verified a moment ago, so a client's every request does not pay for the signature
/// check again: a browser sends the same access token for its whole lifetime, and the Ed25519
/// verification with the claims' JSON decoding was a tenth of a one-change push's CPU
/// (docs/benchmarks.md, the profile).
///
/// An entry is keyed by the whole token text (never by a part of it: a cached signature
/// must not vouch for another payload) and holds the verified user until the earlier of the
/// token's own end (`exp` plus leeway) and `lifetime`. It is only used while the key set it
/// was verified with is unchanged: a JWKS refresh that changes the document starts over, so a
/// key withdrawn by mana-auth stops its tokens at the next refresh, as without the cache.
/// At `capacity` the entries past their time go, then half of the rest.
package final class VerifiedTokenCache: Sendable {
    private struct Entry {
        let user: AuthenticatedUser
        let until: Date
        let keySet: Int
    }

    private let entries = Mutex<[String: Entry]>([:])
    let capacity: Int
    let lifetime: TimeInterval

    package init(capacity: Int = 1_024, lifetime: Duration = .seconds(60)) {
        self.capacity = max(capacity, 2)
        self.lifetime = lifetime.inSeconds
    }

    /// The user `token` was verified for, if that happened under `keySet` and is still good at `now`.
    package func user(for token: String, keySet: Int, now: Date) -> AuthenticatedUser? {
        entries.withLock { entries in
            guard let entry = entries[token] else { return nil }
            guard entry.keySet == keySet, now <= entry.until else {
                entries[token] = nil
                return nil
            }
            return entry.user
        }
    }

    /// Remembers a verified token.
    package func store(_ token: String, user: AuthenticatedUser, keySet: Int, now: Date) {
        let until = min(user.validUntil ?? .distantFuture, now.addingTimeInterval(lifetime))
        entries.withLock { entries in
            if entries.count >= capacity, entries[token] == nil {
                entries = entries.filter { $0.value.keySet == keySet && now <= $0.value.until }
                if entries.count >= capacity { entries = Dictionary(uniqueKeysWithValues: entries.prefix(capacity / 2).map { ($0.key, $0.value) }) }
            }
            entries[token] = Entry(user: user, until: until, keySet: keySet)
        }
    }

    /// How many tokens are held (for tests).
    package var count: Int { entries.withLock { $0.count } }
}
