import HTTPKit

/// The Cloud Sync subscription's neighbours and schedules.
struct SubscriptionSettings: Sendable {
    var syncURL = "http://localhost:3050"
    /// How long one call telling mana-sync about a subscription change may take (best effort).
    var syncTimeout: Duration = .seconds(1)
    var notifyURL = "http://localhost:3040"
    /// Time between in-process recurring-charge runs; nil switches the scheduler off.
    var chargeInterval: Duration? = .seconds(3600)
    var resumeURL = "https://mana.how/settings/sync"
    var outboxPollInterval: Duration = .seconds(5)
    var outboxRetryBase: Duration = .seconds(2)
    var outboxRetryMax: Duration = .seconds(600)
    /// Renewals one recurring-charge run performs at once.
    var chargeConcurrency = 4
    /// Failed renewal runs (not missing credits) after which a subscription pauses.
    var renewalMaxFailures = 3
    /// Wait before the first retry of a failed renewal; doubles per failure, at most a day.
    var renewalRetryBase: Duration = .seconds(300)

    enum Variables {
        static let syncURL = EnvironmentVariable(
            "MANA_SYNC_URL", default: "http://localhost:3050", help: "mana-sync, told when a subscription changes")
        static let syncTimeout = EnvironmentVariable(
            "MANA_SYNC_TIMEOUT", default: "1",
            help: "seconds one call telling mana-sync about a subscription change may take; a lost call is covered by mana-sync's cache TTL")
        static let notifyURL = EnvironmentVariable(
            "MANA_NOTIFY_URL", default: "http://localhost:3040", help: "mana-notify, which sends the 'Cloud Sync pausiert' email")
        static let chargeInterval = EnvironmentVariable(
            "SYNC_CHARGE_INTERVAL", default: "3600", help: "seconds between recurring Cloud Sync charges in this process; 0 switches it off")
        static let chargeConcurrency = EnvironmentVariable(
            "SYNC_CHARGE_CONCURRENCY", default: "4", help: "renewals one recurring-charge run performs at once (each on its own connection)")
        static let renewalMaxFailures = EnvironmentVariable(
            "SYNC_RENEWAL_MAX_FAILURES", default: "3",
            help: "failed renewal runs (for a reason other than missing credits) after which a subscription pauses as if unpaid")
        static let renewalRetryBase = EnvironmentVariable(
            "SYNC_RENEWAL_RETRY_BASE", default: "300", help: "seconds before a failed renewal is retried; doubles per failure, at most a day")
        static let resumeURL = EnvironmentVariable(
            "SYNC_RESUME_URL", default: "https://mana.how/settings/sync", help: "link in the pause email where the user resumes sync")
        static let outboxPoll = EnvironmentVariable(
            "OUTBOX_POLL_INTERVAL", default: "5", help: "seconds between looks for undelivered notifications")
        static let outboxRetryBase = EnvironmentVariable(
            "OUTBOX_RETRY_BASE", default: "2", help: "seconds before the first retry of a notification; doubles per attempt")
        static let outboxRetryMax = EnvironmentVariable(
            "OUTBOX_RETRY_MAX", default: "600", help: "most seconds between retries of a notification")

        static let all = [
            syncURL, syncTimeout, notifyURL, chargeInterval, chargeConcurrency, renewalMaxFailures, renewalRetryBase, resumeURL, outboxPoll, outboxRetryBase, outboxRetryMax]
    }

    init() {}

    init(reading reader: inout ConfigReader) {
        syncURL = reader.url(Variables.syncURL)
        syncTimeout = reader.seconds(Variables.syncTimeout, in: 0.1...60)
        notifyURL = reader.url(Variables.notifyURL)
        let interval = reader.seconds(Variables.chargeInterval, in: 0...604_800)
        chargeInterval = interval == .zero ? nil : interval
        resumeURL = reader.url(Variables.resumeURL)
        chargeConcurrency = reader.int(Variables.chargeConcurrency, in: 1...64)
        renewalMaxFailures = reader.int(Variables.renewalMaxFailures, in: 1...100)
        renewalRetryBase = reader.seconds(Variables.renewalRetryBase, in: 0...86_400)
        outboxPollInterval = reader.seconds(Variables.outboxPoll, in: 0.05...3_600)
        outboxRetryBase = reader.seconds(Variables.outboxRetryBase, in: 0.01...3_600)
        outboxRetryMax = reader.seconds(Variables.outboxRetryMax, in: 0.01...86_400)
    }
}
