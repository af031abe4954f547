import HTTPKit

/// How mana-credits talks to Stripe.
struct StripeSettings: Sendable {
    /// nil: purchases answer 503 "payments not configured".
    var secretKey: String?
    /// nil: the webhook answers 503.
    var webhookSecret: String?
    var apiBase = "https://api.stripe.com"
    var timeout: Duration = .seconds(10)
    /// Accepted age of a webhook signature's timestamp.
    var tolerance: Duration = .seconds(300)

    enum Variables {
        static let secretKey = EnvironmentVariable("STRIPE_SECRET_KEY", default: "", help: "Stripe secret key; purchases answer 503 without it")
        static let webhookSecret = EnvironmentVariable(
            "STRIPE_WEBHOOK_SECRET", default: "", help: "signing secret of the Stripe webhook endpoint; the webhook answers 503 without it")
        static let apiBase = EnvironmentVariable("STRIPE_API_BASE", default: "https://api.stripe.com", help: "Stripe's API base URL")
        static let timeout = EnvironmentVariable("STRIPE_TIMEOUT", default: "10", help: "seconds a Stripe call may take (then 504)")
        static let all = [secretKey, webhookSecret, apiBase, timeout]
    }

    init() {}

    init(reading reader: inout ConfigReader) {
        secretKey = reader.optionalString(Variables.secretKey)
        webhookSecret = reader.optionalString(Variables.webhookSecret)
        apiBase = reader.url(Variables.apiBase)
        timeout = reader.seconds(Variables.timeout, in: 0.1...120)
    }
}
