import HTTPKit
import SharedAuth

/// Everything mana-sync reads from the environment.
struct SyncConfiguration: Sendable {
    var chassis: ChassisSettings
    var auth: AuthSettings
    var billing: BillingSettings
    var realtime = RealtimeSettings()
    var push = PushLimits()
    var pages = PageLimits()
    var compaction = CompactionSettings()
    var memberships = MembershipSettings(authURL: "http://localhost:3001")

    static let serviceName = "mana-sync"

    /// Every variable mana-sync reads, for `--help` and the README.
    static var variables: [EnvironmentVariable] {
        ChassisSettings.variables(defaultPort: 3050, defaultDatabase: "mana_sync") + AuthSettings.Variables.all
            + BillingSettings.Variables.all + RealtimeSettings.Variables.all + PushLimits.Variables.all
            + PageLimits.Variables.all + CompactionSettings.Variables.all + MembershipSettings.Variables.all
    }

    init(chassis: ChassisSettings, auth: AuthSettings, billing: BillingSettings, realtime: RealtimeSettings = RealtimeSettings()) {
        self.chassis = chassis
        self.auth = auth
        self.billing = billing
        self.realtime = realtime
    }

    init(reading reader: inout ConfigReader) {
        chassis = ChassisSettings(reading: &reader, serviceName: Self.serviceName, defaultPort: 3050, defaultDatabase: "mana_sync")
        auth = AuthSettings(readingTokenRules: &reader)
        billing = BillingSettings(reading: &reader)
        realtime = RealtimeSettings(reading: &reader)
        push = PushLimits(reading: &reader)
        pages = PageLimits(reading: &reader)
        compaction = CompactionSettings(reading: &reader)
        memberships = MembershipSettings(reading: &reader)
    }
}

/// How large one push may be. The local-store clients push everything pending in one request
/// after a login, so the limits are generous; a push is still one transaction.
struct PushLimits: Sendable {
    /// Most changes in one push (413 above).
    var maximumChanges = 50_000
    /// Largest push body in bytes (413 above).
    var maximumBodyBytes = 32 << 20
    /// Push statements of this process at once; pushes arriving while all run wait and go
    /// together in one transaction (``StatementBatches``; 0: every push alone).
    var lanes = 2

    enum Variables {
        static let changes = EnvironmentVariable("SYNC_MAX_CHANGES", default: "50000", help: "most changes one push may carry (413 above)")
        static let bodyBytes = EnvironmentVariable(
            "SYNC_MAX_BODY_BYTES", default: "33554432", help: "largest request body in bytes (413 above)")
        static let lanes = EnvironmentVariable(
            "SYNC_PUSH_LANES", default: "2",
            help: "push statements at once; pushes arriving meanwhile go together in one transaction (0: each alone; docs/sync.md)")
        static var all: [EnvironmentVariable] { [changes, bodyBytes, lanes] }
    }

    init() {}

    init(reading reader: inout ConfigReader) {
        maximumChanges = reader.int(Variables.changes, in: 1...1_000_000)
        maximumBodyBytes = reader.int(Variables.bodyBytes, in: 1024...(1 << 30))
        lanes = reader.int(Variables.lanes, in: 0...500)
    }
}

/// How many changes one answer carries. The protocol's bounds are upper bounds: a push answer
/// carries "at most 1,000" changes and a pull without `limit` a page of 1,000, each with
/// `hasMore` when more remain, and clients page on with `since = syncedUntil`. Both defaults
/// keep the original's sizes; an operator whose clients hammer one user from many devices may
/// lower them (docs/benchmarks.md, the mixed scenario), trading more round trips on a long
/// catch-up for much cheaper answers under load.
struct PageLimits: Sendable {
    /// Most other clients' changes a push answer carries.
    var pushAnswer = 1_000
    /// Page size of a pull that names no `limit` (an explicit `limit` of 1–5,000 still wins).
    var pullDefault = 1_000
    /// Most bytes of change text the page cache holds (``LogSegments``; 0: none).
    var cacheBytes = 8 << 20

    enum Variables {
        static let pushAnswer = EnvironmentVariable(
            "SYNC_PUSH_PAGE_LIMIT", default: "1000", help: "most changes of other clients a push answer carries (1-1000; hasMore beyond)")
        static let pullDefault = EnvironmentVariable(
            "SYNC_PULL_PAGE_DEFAULT", default: "1000", help: "page size of a pull without limit (1-5000)")
        static let cacheBytes = EnvironmentVariable(
            "SYNC_PAGE_CACHE_BYTES", default: "8388608",
            help: "most bytes of recent log stretches held to cut full pages from (0: no page cache; docs/sync.md)")
        static var all: [EnvironmentVariable] { [pushAnswer, pullDefault, cacheBytes] }
    }

    init() {}

    init(reading reader: inout ConfigReader) {
        pushAnswer = reader.int(Variables.pushAnswer, in: 1...1_000)
        pullDefault = reader.int(Variables.pullDefault, in: 1...5_000)
        cacheBytes = reader.int(Variables.cacheBytes, in: 0...(1 << 30))
    }
}
