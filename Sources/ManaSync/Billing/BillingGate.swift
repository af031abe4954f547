import Foundation
import HTTPKit
import HTTPTypes
import Logging
import Synchronization

/// The Cloud Sync billing gate: asks mana-credits whether a user's subscription is active,
/// and answers 402 when it is not.
///
/// - Answers are cached per user (active for `activeTTL`, inactive for `inactiveTTL`), in a
///   bounded cache that drops the entries closest to expiry first when full.
/// - Concurrent lookups of one uncached user share one status call.
/// - It **fails open**: a refused connection, a timeout, a non-200 answer or an unreadable
///   body lets the request through (logged at warning, counted).
/// - A circuit breaker: after `breakerThreshold` consecutive failures no calls are made for
///   `breakerCooldown` (requests pass at once), then one probe call decides whether to close.
/// Where the gate asks whether a user's Cloud Sync is active: mana-credits over HTTP
/// (``CreditsStatusClient``); the unit tests script one to drive the cache and the breaker.
protocol SubscriptionStatusSource: Sendable {
    /// Whether the user's subscription is active, or why the question could not be answered.
    func isActive(userID: String) async -> Result<Bool, ServiceClientError>
}

/// mana-credits' `GET /api/v1/internal/sync/status/{userId}` with the service key.
struct CreditsStatusClient: SubscriptionStatusSource {
    /// The answer of mana-credits' internal status endpoint (other fields are ignored).
    struct Status: Decodable {
        let active: Bool
    }

    let client: ServiceClient

    func isActive(userID: String) async -> Result<Bool, ServiceClientError> {
        let path = "/api/v1/internal/sync/status/" + (userID.addingPercentEncoding(withAllowedCharacters: .pathSegment) ?? userID)
        do {
            return .success(try await client.get(path, as: Status.self).active)
        } catch let error as ServiceClientError {
            return .failure(error)
        } catch {
            return .failure(.unreachable("\(error)"))
        }
    }
}

final class BillingGate: Sendable {
    enum Decision: String, Sendable {
        case allowed, denied
        case failedOpen = "failed_open"
    }

    private struct Entry {
        var active: Bool
        var expires: ContinuousClock.Instant
    }

    private enum Breaker {
        case closed(failures: Int)
        case open(until: ContinuousClock.Instant)
        case probing
    }

    private struct State {
        var cache: [String: Entry] = [:]
        var inFlight: [String: Task<Bool?, Never>] = [:]
        var breaker = Breaker.closed(failures: 0)
        /// Bumped by every invalidation: an answer fetched across one is not cached.
        var invalidations: UInt64 = 0
    }

    private let settings: BillingSettings
    private let source: any SubscriptionStatusSource
    private let metrics: ServiceMetrics
    private let logger: Logger
    private let state = Mutex(State())
    private let clock = ContinuousClock()

    /// Rendered by mana-sync's envelope as exactly
    /// `{"error":"sync_inactive","message":"Cloud Sync ist nicht aktiv. Aktiviere Sync in den Einstellungen."}`.
    static let inactive = APIError(
        .paymentRequired, code: "sync_inactive", message: "Cloud Sync ist nicht aktiv. Aktiviere Sync in den Einstellungen.")

    /// The gate asking mana-credits at `settings.creditsURL`.
    convenience init(settings: BillingSettings, serviceKey: String, metrics: ServiceMetrics, logger: Logger) {
        self.init(
            settings: settings,
            source: CreditsStatusClient(client: ServiceClient(baseURL: settings.creditsURL, serviceKey: serviceKey, timeout: settings.timeout)),
            metrics: metrics, logger: logger)
    }

    init(settings: BillingSettings, source: any SubscriptionStatusSource, metrics: ServiceMetrics, logger: Logger) {
        self.settings = settings
        self.source = source
        self.metrics = metrics
        self.logger = logger
        metrics.set("sync_billing_breaker_open", to: 0)
    }

    /// Throws the 402 for an inactive subscription; returns for active ones and when failing open.
    func check(userID: String) async throws {
        let decision = await decide(userID: userID)
        metrics.count("sync_billing_decisions_total", [("decision", decision.rawValue)])
        if decision == .denied {
            throw Self.inactive
        }
    }

    /// Forgets the cached answer for `userID`, so the next request asks mana-credits again.
    func invalidate(userID: String) {
        state.withLock { state in
            state.cache[userID] = nil
            state.invalidations &+= 1
        }
        metrics.count("sync_billing_invalidations_total")
    }

    func decide(userID: String) async -> Decision {
        let now = clock.now
        enum Plan { case cached(Bool), skip, join(Task<Bool?, Never>) }
        let plan: Plan = state.withLock { state in
            if let entry = state.cache[userID], entry.expires > now { return .cached(entry.active) }
            if let running = state.inFlight[userID] { return .join(running) }
            switch state.breaker {
            case .probing:
                return .skip
            case .open(let until) where until > now:
                return .skip
            case .open:
                state.breaker = .probing
            case .closed:
                break
            }
            let generation = state.invalidations
            let task = Task { await self.fetch(userID: userID, generation: generation) }
            state.inFlight[userID] = task
            return .join(task)
        }
        switch plan {
        case .cached(let active):
            metrics.count("sync_billing_cache_total", [("result", "hit")])
            return active ? .allowed : .denied
        case .skip:
            metrics.count("sync_billing_cache_total", [("result", "miss")])
            return .failedOpen
        case .join(let task):
            metrics.count("sync_billing_cache_total", [("result", "miss")])
            // A cancelled request (its deadline passed) stops waiting and fails open (its own
            // work is cancelled next); the shared lookup goes on for the others.
            guard let active = (try? await value(of: task)) ?? nil else { return .failedOpen }
            return active ? .allowed : .denied
        }
    }

    /// One status call; nil when it failed. Records the answer and the breaker's new state.
    private func fetch(userID: String, generation: UInt64) async -> Bool? {
        let started = clock.now
        let outcome = await source.isActive(userID: userID)
        metrics.record("sync_billing_status_call_duration_seconds", duration: clock.now - started)
        let now = clock.now
        let breakerOpened: Bool = state.withLock { state in
            state.inFlight[userID] = nil
            switch outcome {
            case .success(let active):
                if state.invalidations == generation {
                    state.cache[userID] = Entry(active: active, expires: now + (active ? settings.activeTTL : settings.inactiveTTL))
                    if state.cache.count > settings.cacheCapacity { Self.evict(&state.cache, capacity: settings.cacheCapacity, now: now) }
                }
                state.breaker = .closed(failures: 0)
                return false
            case .failure:
                switch state.breaker {
                case .probing:
                    state.breaker = .open(until: now + settings.breakerCooldown)
                    return true
                case .closed(let failures) where failures + 1 >= settings.breakerThreshold:
                    state.breaker = .open(until: now + settings.breakerCooldown)
                    return true
                case .closed(let failures):
                    state.breaker = .closed(failures: failures + 1)
                    return false
                case .open:
                    return false
                }
            }
        }
        switch outcome {
        case .success:
            metrics.count("sync_billing_status_calls_total", [("outcome", "ok")])
            metrics.set("sync_billing_breaker_open", to: 0)
            return try? outcome.get()
        case .failure(let error):
            metrics.count("sync_billing_status_calls_total", [("outcome", "failed")])
            logger.warning(
                "Cloud Sync status check failed; letting the request through",
                metadata: ["user_id": "\(userID)", "error": "\(error)", "breaker_opened": "\(breakerOpened)"])
            if breakerOpened { metrics.set("sync_billing_breaker_open", to: 1) }
            return nil
        }
    }

    /// Drops expired entries, then the ones closest to expiry, down to 90% of `capacity`,
    /// so a full cache is trimmed once per tenth of its size rather than on every insert.
    private static func evict(_ cache: inout [String: Entry], capacity: Int, now: ContinuousClock.Instant) {
        cache = cache.filter { $0.value.expires > now }
        let target = capacity - capacity / 10
        guard cache.count > target else { return }
        let doomed = cache.sorted { $0.value.expires < $1.value.expires }.prefix(cache.count - target)
        for (key, _) in doomed { cache[key] = nil }
    }

    /// How many users have a cached answer (for tests and metrics).
    var cachedUsers: Int { state.withLock { $0.cache.count } }
}
