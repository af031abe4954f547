import HTTPKit
import SharedAuth

/// Everything mana-credits reads from the environment.
struct CreditsConfiguration: Sendable {
    var chassis: ChassisSettings
    var auth: AuthSettings
    var subscriptions = SubscriptionSettings()
    var gifts = GiftSettings()
    var stripe = StripeSettings()
    var ledger = LedgerSettings()
    var audit = AuditSettings()

    static let serviceName = "mana-credits"

    /// Every variable mana-credits reads, for `--help` and the README.
    static var variables: [EnvironmentVariable] {
        ChassisSettings.variables(defaultPort: 3061, defaultDatabase: "mana_credits") + AuthSettings.Variables.all
            + SubscriptionSettings.Variables.all + GiftSettings.Variables.all + StripeSettings.Variables.all
            + LedgerSettings.Variables.all + AuditSettings.Variables.all
    }

    init(
        chassis: ChassisSettings, auth: AuthSettings, subscriptions: SubscriptionSettings = SubscriptionSettings(),
        gifts: GiftSettings = GiftSettings(), stripe: StripeSettings = StripeSettings(),
        ledger: LedgerSettings = LedgerSettings()
    ) {
        self.ledger = ledger
        self.stripe = stripe
        self.chassis = chassis
        self.auth = auth
        self.subscriptions = subscriptions
        self.gifts = gifts
    }

    init(reading reader: inout ConfigReader) {
        chassis = ChassisSettings(
            reading: &reader, serviceName: Self.serviceName, defaultPort: 3061, defaultDatabase: "mana_credits")
        auth = AuthSettings(readingTokenRules: &reader)
        subscriptions = SubscriptionSettings(reading: &reader)
        gifts = GiftSettings(reading: &reader)
        stripe = StripeSettings(reading: &reader)
        ledger = LedgerSettings(reading: &reader)
        audit = AuditSettings(reading: &reader)
    }
}
