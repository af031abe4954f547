import Foundation
import HTTPKit
import Logging
import SharedAuth
import Synchronization

/// Shared spaces (issue 23, `../shared/spec/spaces.md` section 9): which spaces a user
/// belongs to, with which role, as mana-auth says.
///
/// A space is a mana-auth organization. `_personal:<userId>` names a user's own space and is
/// never looked up.
struct Memberships: Sendable, Equatable {
    /// Organization id → role.
    let roles: [String: String]

    init(roles: [String: String]) { self.roles = roles }

    static let personalPrefix = "_personal:"

    func canRead(_ space: String) -> Bool { roles[space] != nil }

    func canWrite(_ space: String, writeRoles: Set<String>) -> Bool { roles[space].map(writeRoles.contains) ?? false }

    var spaces: [String] { roles.keys.sorted() }
}

/// The settings of the membership lookup (`MANA_AUTH_URL`, `SPACE_WRITE_ROLES`, `MEMBERSHIP_*`).
struct MembershipSettings: Sendable {
    var authURL: String
    /// Roles that may write into a space; any other role (`viewer`, custom ones) reads only.
    var writeRoles: Set<String> = ["owner", "admin", "member"]
    /// How long an answer is used without asking again.
    var freshTTL: Duration = .seconds(60)
    /// After a failed lookup, how long no new call is made (the stale answer, if any, serves).
    var failureTTL: Duration = .seconds(10)
    /// How old an answer may be and still serve while mana-auth cannot answer.
    var staleLimit: Duration = .seconds(900)
    /// One lookup's timeout.
    var timeout: Duration = .seconds(3)
    /// Most users cached; beyond, the least recently used go.
    var capacity = 50_000

    enum Variables {
        static let url = EnvironmentVariable(
            "MEMBERSHIPS_URL", default: "", help: "base URL of mana-auth's internal memberships endpoint (default: MANA_AUTH_URL)")
        static let writeRoles = EnvironmentVariable(
            "SPACE_WRITE_ROLES", default: "owner,admin,member", help: "roles that may write into a shared space (others read only)")
        static let freshTTL = EnvironmentVariable(
            "MEMBERSHIP_CACHE_TTL", default: "60", help: "seconds a user's space memberships from mana-auth are used before asking again")
        static let failureTTL = EnvironmentVariable(
            "MEMBERSHIP_FAILURE_TTL", default: "10", help: "seconds after a failed membership lookup before asking mana-auth again")
        static let staleLimit = EnvironmentVariable(
            "MEMBERSHIP_STALE_LIMIT", default: "900", help: "seconds an old membership answer still serves while mana-auth is down")
        static let timeout = EnvironmentVariable(
            "MEMBERSHIP_TIMEOUT", default: "3", help: "seconds one membership lookup at mana-auth may take")
        static let capacity = EnvironmentVariable(
            "MEMBERSHIP_CACHE_SIZE", default: "50000", help: "users whose memberships are cached (least recently used go first)")
        static var all: [EnvironmentVariable] { [url, writeRoles, freshTTL, failureTTL, staleLimit, timeout, capacity] }
    }

    init(authURL: String) { self.authURL = authURL }

    init(reading reader: inout ConfigReader) {
        authURL = reader.optionalString(Variables.url) == nil ? reader.url(AuthSettings.Variables.authURL) : reader.url(Variables.url)
        writeRoles = Set(reader.list(Variables.writeRoles))
        freshTTL = reader.seconds(Variables.freshTTL, in: 1...3_600)
        failureTTL = reader.seconds(Variables.failureTTL, in: 0.1...600)
        staleLimit = reader.seconds(Variables.staleLimit, in: 0...86_400)
        timeout = reader.seconds(Variables.timeout, in: 0.1...60)
        capacity = reader.int(Variables.capacity, in: 100...10_000_000)
    }
}

/// Where memberships come from: mana-auth over HTTP (``AuthMembershipClient``); the unit
/// tests script one to drive the cache.
protocol MembershipSource: Sendable {
    func memberships(userID: String) async -> Result<Memberships, ServiceClientError>
}

/// mana-auth's `GET /api/v1/internal/users/{userId}/memberships` with the service key:
/// `{"userId": "...", "memberships": [{"organizationId": "...", "role": "..."}]}`.
struct AuthMembershipClient: MembershipSource {
    struct Answer: Decodable {
        struct Membership: Decodable {
            let organizationId: String
            let role: String
        }
        let memberships: [Membership]
    }

    let client: ServiceClient

    func memberships(userID: String) async -> Result<Memberships, ServiceClientError> {
        // The original put the user id into the path unescaped; ours is one escaped segment.
        let path = "/api/v1/internal/users/" + (userID.addingPercentEncoding(withAllowedCharacters: .pathSegment) ?? userID) + "/memberships"
        do {
            let answer = try await client.get(path, as: Answer.self)
            return .success(Memberships(roles: Dictionary(answer.memberships.map { ($0.organizationId, $0.role) }) { first, _ in first }))
        } catch let error as ServiceClientError {
            return .failure(error)
        } catch {
            return .failure(.unreachable("\(error)"))
        }
    }
}

/// Users' memberships, cached (spaces.md section 9): an answer serves for `freshTTL`; after a
/// failed lookup no call is made for `failureTTL`, and an answer up to `staleLimit` old
/// serves meanwhile; concurrent lookups of one user share one call; at most `capacity` users
/// are kept. ``invalidate(userIDs:)`` forgets users at once, stale answers included (a
/// removed member must stop reading even while mana-auth is down).
final class MembershipDirectory: Sendable {
    enum Lookup: Sendable, Equatable {
        /// An answer younger than `freshTTL`.
        case fresh(Memberships)
        /// mana-auth could not answer; this is its last answer, younger than `staleLimit`.
        case stale(Memberships)
        /// No usable answer: reads serve own rows only, writes into spaces get 503.
        case unavailable

        var memberships: Memberships? {
            switch self {
            case .fresh(let memberships), .stale(let memberships): memberships
            case .unavailable: nil
            }
        }
    }

    private struct Entry {
        var memberships: Memberships?
        /// When `memberships` was fetched.
        var fetchedAt: Duration
        /// No call before this (a failure's pause).
        var retryAfter: Duration = .zero
        var lastUsed: Duration
    }

    private struct State {
        var entries: [String: Entry] = [:]
        var inFlight: [String: Task<Lookup, Never>] = [:]
        /// Bumped by every invalidation: an answer fetched across one is not kept.
        var invalidations: UInt64 = 0
    }

    let settings: MembershipSettings
    private let source: any MembershipSource
    private let metrics: ServiceMetrics
    private let logger: Logger
    private let now: @Sendable () -> Duration
    private let state = Mutex(State())

    /// The directory asking mana-auth at `settings.authURL`.
    convenience init(settings: MembershipSettings, serviceKey: String, metrics: ServiceMetrics, logger: Logger) {
        self.init(
            settings: settings,
            source: AuthMembershipClient(client: ServiceClient(baseURL: settings.authURL, serviceKey: serviceKey, timeout: settings.timeout)),
            metrics: metrics, logger: logger)
    }

    /// `now` is the time since some fixed start (tests drive it by hand).
    init(
        settings: MembershipSettings, source: any MembershipSource, metrics: ServiceMetrics, logger: Logger,
        now: @escaping @Sendable () -> Duration = MembershipDirectory.monotonicNow
    ) {
        self.settings = settings
        self.source = source
        self.metrics = metrics
        self.logger = logger
        self.now = now
    }

    private static let start = ContinuousClock.now
    static let monotonicNow: @Sendable () -> Duration = { ContinuousClock.now - start }

    /// The series this type writes, at zero from the start.
    static let declared: [(String, [(String, String)])] =
        ["hit", "miss", "stale", "failed"].map { ("sync_membership_lookups_total", [("result", $0)]) }
        + [("sync_membership_invalidations_total", [])]

    func lookup(userID: String) async -> Lookup {
        let now = self.now()
        enum Plan { case answer(Lookup, String), join(Task<Lookup, Never>) }
        let plan: Plan = state.withLock { state in
            if var entry = state.entries[userID] {
                entry.lastUsed = now
                state.entries[userID] = entry
                if let memberships = entry.memberships, now - entry.fetchedAt < settings.freshTTL {
                    return .answer(.fresh(memberships), "hit")
                }
                if now < entry.retryAfter { return .answer(Self.fallback(entry, now: now, limit: settings.staleLimit), "stale") }
            }
            if let running = state.inFlight[userID] { return .join(running) }
            let generation = state.invalidations
            let task = Task { await self.fetch(userID: userID, generation: generation) }
            state.inFlight[userID] = task
            return .join(task)
        }
        switch plan {
        case .answer(let lookup, let result):
            metrics.count("sync_membership_lookups_total", [("result", lookup == .unavailable ? "failed" : result)])
            return lookup
        case .join(let task):
            // A cancelled request stops waiting; the shared lookup goes on for the others.
            return (try? await value(of: task)) ?? .unavailable
        }
    }

    /// Forgets these users here (their next lookup asks mana-auth).
    func invalidate(userIDs: [String]) {
        state.withLock { state in
            for user in userIDs { state.entries[user] = nil }
            state.invalidations &+= 1
        }
        metrics.count("sync_membership_invalidations_total", by: userIDs.count)
    }

    /// How many users are cached (tests).
    var cachedUsers: Int { state.withLock { $0.entries.count } }

    private static func fallback(_ entry: Entry, now: Duration, limit: Duration) -> Lookup {
        guard let memberships = entry.memberships, now - entry.fetchedAt <= limit else { return .unavailable }
        return .stale(memberships)
    }

    private func fetch(userID: String, generation: UInt64) async -> Lookup {
        let outcome = await source.memberships(userID: userID)
        let now = self.now()
        let lookup: Lookup = state.withLock { state in
            state.inFlight[userID] = nil
            var entry = state.entries[userID] ?? Entry(memberships: nil, fetchedAt: now, lastUsed: now)
            switch outcome {
            case .success(let memberships):
                entry.memberships = memberships
                entry.fetchedAt = now
                entry.retryAfter = .zero
                if state.invalidations == generation {
                    state.entries[userID] = entry
                    if state.entries.count > settings.capacity { Self.evict(&state.entries, capacity: settings.capacity) }
                }
                return .fresh(memberships)
            case .failure:
                entry.retryAfter = now + settings.failureTTL
                if state.invalidations == generation || state.entries[userID] == nil {
                    state.entries[userID] = entry
                    if state.entries.count > settings.capacity { Self.evict(&state.entries, capacity: settings.capacity) }
                }
                return Self.fallback(entry, now: now, limit: settings.staleLimit)
            }
        }
        switch (outcome, lookup) {
        case (.success, _):
            metrics.count("sync_membership_lookups_total", [("result", "miss")])
        case (.failure(let error), _):
            metrics.count("sync_membership_lookups_total", [("result", lookup == .unavailable ? "failed" : "stale")])
            logger.warning(
                "space membership lookup failed", metadata: ["user_id": "\(userID)", "error": "\(error)", "stale": "\(lookup != .unavailable)"])
        }
        return lookup
    }

    /// Drops the least recently used entries down to 90% of `capacity`, so a full cache is
    /// trimmed once per tenth of its size rather than on every insert.
    private static func evict(_ entries: inout [String: Entry], capacity: Int) {
        let target = capacity - capacity / 10
        let doomed = entries.sorted { $0.value.lastUsed < $1.value.lastUsed }.prefix(entries.count - target)
        for (key, _) in doomed { entries[key] = nil }
    }
}
