import HTTPKit
import SharedAuth

/// Everything mana-credits reads from the environment.
struct CreditsConfiguration: Sendable {
    var chassis: ChassisSettings
    var auth: AuthSettings
    var subscriptions = SubscriptionSettings()
    var gifts = GiftSettings()
    var stripe = StripeSettings()

    static let serviceName = "mana-credits"

    /// Every variable mana-credits reads, for `--help` and the README.
    static var variables: [EnvironmentVariable] {
        ChassisSettings.variables(defaultPort: 3061, defaultDatabase: "mana_credits") + [
            Variables.authURL, Variables.jwksURL, Variables.issuer, Variables.audience,
            AuthSettings.Variables.refresh, AuthSettings.Variables.leeway, AuthSettings.Variables.serviceKey,
        ] + SubscriptionSettings.Variables.all + GiftSettings.Variables.all + StripeSettings.Variables.all
    }

    enum Variables {
        static let authURL = EnvironmentVariable("MANA_AUTH_URL", default: "http://localhost:3001", help: "mana-auth's base URL")
        static let jwksURL = EnvironmentVariable(
            "JWKS_URL", default: "", help: "mana-auth's JWKS document (default: {MANA_AUTH_URL}/api/auth/jwks; http://, https:// or file://)")
        static let issuer = EnvironmentVariable("JWT_ISSUER", default: "", help: "required token issuer (default: MANA_AUTH_URL)")
        static let audience = EnvironmentVariable("JWT_AUDIENCE", default: "mana", help: "required token audience")
    }

    init(
        chassis: ChassisSettings, auth: AuthSettings, subscriptions: SubscriptionSettings = SubscriptionSettings(),
        gifts: GiftSettings = GiftSettings(), stripe: StripeSettings = StripeSettings()
    ) {
        self.stripe = stripe
        self.chassis = chassis
        self.auth = auth
        self.subscriptions = subscriptions
        self.gifts = gifts
    }

    init(reading reader: inout ConfigReader) {
        chassis = ChassisSettings(
            reading: &reader, serviceName: Self.serviceName, defaultPort: 3061, defaultDatabase: "mana_credits")
        let authURL = reader.url(Variables.authURL)
        let jwksURL =
            reader.optionalString(Variables.jwksURL) == nil
            ? authURL + "/api/auth/jwks" : reader.url(Variables.jwksURL, schemes: ["http", "https", "file"])
        auth = AuthSettings(
            reading: &reader, jwksURL: jwksURL, issuer: reader.optionalString(Variables.issuer) ?? authURL,
            audience: reader.string(Variables.audience))
        subscriptions = SubscriptionSettings(reading: &reader)
        gifts = GiftSettings(reading: &reader)
        stripe = StripeSettings(reading: &reader)
    }
}
