import HTTPKit

/// Gift code links, expiry schedule and rate limits.
struct GiftSettings: Sendable {
    var baseURL = "https://mana.how"
    /// Time between expiry runs in this process; nil switches the job off.
    var expiryInterval: Duration? = .seconds(3600)
    /// Public lookups per minute and client address.
    var lookupLimit = 30
    /// Redeem attempts per minute, per user and per client address.
    var redeemLimit = 10
    /// The window both limits count over (a minute; tests lengthen it so that a slow machine
    /// does not refill a token between two of their requests).
    var limitWindow: Duration = .seconds(60)
    /// Which `X-Forwarded-For` entries name the client (default: none, the peer address).
    var trustedProxies: TrustedProxies = .none

    enum Variables {
        static let baseURL = EnvironmentVariable("BASE_URL", default: "https://mana.how", help: "public web address; gift links are {BASE_URL}/g/{code}")
        static let expiryInterval = EnvironmentVariable(
            "GIFT_EXPIRY_INTERVAL", default: "3600", help: "seconds between gift expiry runs in this process; 0 switches it off")
        static let lookupLimit = EnvironmentVariable(
            "GIFT_LOOKUP_LIMIT", default: "30", help: "public gift code lookups per minute and client address")
        static let redeemLimit = EnvironmentVariable(
            "GIFT_REDEEM_LIMIT", default: "10", help: "gift redeem attempts per minute, per user and per client address")
        static let trustedProxies = EnvironmentVariable(
            "TRUSTED_PROXIES", default: "",
            help: "proxies in front of the service, for per-address limits: a number of hops (1 = the right-most X-Forwarded-For entry) or comma-separated addresses/CIDR networks; empty: the peer address")
        static let trustForwardedFor = EnvironmentVariable(
            "TRUST_FORWARDED_FOR", default: "false", help: "deprecated: true means TRUSTED_PROXIES=1 (when TRUSTED_PROXIES is unset)")
        static let all = [baseURL, expiryInterval, lookupLimit, redeemLimit, trustedProxies, trustForwardedFor]
    }

    init() {}

    init(reading reader: inout ConfigReader) {
        baseURL = reader.url(Variables.baseURL)
        let interval = reader.seconds(Variables.expiryInterval, in: 0...604_800)
        expiryInterval = interval == .zero ? nil : interval
        lookupLimit = reader.int(Variables.lookupLimit, in: 1...100_000)
        redeemLimit = reader.int(Variables.redeemLimit, in: 1...100_000)
        let deprecatedTrust = reader.bool(Variables.trustForwardedFor)
        do {
            trustedProxies = try TrustedProxies(parsing: reader.string(Variables.trustedProxies))
        } catch {
            reader.report("TRUSTED_PROXIES: \(error)")
        }
        // The old switch trusted the left-most entry, which the client writes; as an alias it
        // now means one proxy, whose appended (right-most) entry is believed.
        if deprecatedTrust, trustedProxies == .none { trustedProxies = .hops(1) }
    }
}
