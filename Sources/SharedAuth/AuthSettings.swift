import HTTPKit

/// How a service verifies end-user tokens and service keys.
package struct AuthSettings: Sendable {
    package var jwksURL: String
    package var verifier: TokenVerifier.Options
    package var refreshInterval: Duration
    /// How long one JWKS fetch may take before it counts as failed (the keys held are kept).
    package var fetchTimeout: Duration
    /// The `MANA_SERVICE_KEY` entries as written: `key` or `name:key` (see ``ServiceKeys``).
    package var serviceKeys: [String]

    /// The key part of the first entry, sent as `X-Service-Key` on outgoing calls.
    package var outgoingServiceKey: String { serviceKeys.first.map { ServiceKeys.Entry(parsing: $0).key } ?? "" }

    package init(
        jwksURL: String, verifier: TokenVerifier.Options = .init(), refreshInterval: Duration = .seconds(300),
        fetchTimeout: Duration = .seconds(5), serviceKeys: [String]
    ) {
        self.jwksURL = jwksURL
        self.verifier = verifier
        self.refreshInterval = refreshInterval
        self.fetchTimeout = fetchTimeout
        self.serviceKeys = serviceKeys
    }

    package enum Variables {
        package static let serviceKey = EnvironmentVariable(
            "MANA_SERVICE_KEY", default: "dev-service-key",
            help: "service key(s) accepted on internal routes, comma-separated for rotation, each `key` or `name:key` (name: 1-32 of a-z 0-9 -, logged as the caller); the first key is sent on outgoing calls",
            refusedInProduction: true)
        package static let refresh = EnvironmentVariable(
            "JWKS_REFRESH_INTERVAL", default: "300", help: "seconds between JWKS refreshes")
        package static let fetchTimeout = EnvironmentVariable(
            "JWKS_FETCH_TIMEOUT", default: "5", help: "seconds one JWKS fetch may take before it fails (the keys held are kept)")
        package static let leeway = EnvironmentVariable(
            "JWT_LEEWAY", default: "30", help: "seconds of clock skew allowed for exp and nbf")
        package static let authURL = EnvironmentVariable("MANA_AUTH_URL", default: "http://localhost:3001", help: "mana-auth's base URL")
        package static let jwksURL = EnvironmentVariable(
            "JWKS_URL", default: "", help: "mana-auth's JWKS document (default: {MANA_AUTH_URL}/api/auth/jwks; http://, https:// or file://)")
        package static let issuer = EnvironmentVariable(
            "JWT_ISSUER", default: "", help: "required token issuer (default: MANA_AUTH_URL; production needs one of them set)")
        package static let audience = EnvironmentVariable("JWT_AUDIENCE", default: "mana", help: "required token audience")
        /// The variables behind ``init(readingTokenRules:)``, in `--help` order.
        package static var all: [EnvironmentVariable] { [authURL, jwksURL, issuer, audience, refresh, fetchTimeout, leeway, serviceKey] }
    }

    /// Service keys that appear in this repository's files (development defaults, examples).
    static let placeholderKeys: Set<String> = ["dev-service-key", "compose-service-key", "replace-with-a-long-random-key"]

    /// Reads what both services share: mana-auth's address and the token rules (JWKS at
    /// `{MANA_AUTH_URL}/api/auth/jwks` unless `JWKS_URL` says otherwise, issuer `MANA_AUTH_URL`
    /// unless `JWT_ISSUER` says otherwise, audience `mana`), the JWKS refresh, the leeway and the
    /// service keys. Without an issuer check any token mana-auth signs for another purpose
    /// would pass, so issuer and audience are always checked; production refuses the
    /// development issuer (neither variable set) and weak or placeholder service keys.
    package init(readingTokenRules reader: inout ConfigReader) {
        let authURL = reader.url(Variables.authURL)
        let jwksURL =
            reader.optionalString(Variables.jwksURL) == nil
            ? authURL + "/api/auth/jwks" : reader.url(Variables.jwksURL, schemes: ["http", "https", "file"])
        let issuer = reader.optionalString(Variables.issuer)
        if reader.isProduction, issuer == nil, reader.environment[Variables.authURL.name, default: ""].isEmpty {
            reader.report("JWT_ISSUER: production needs the token issuer (set JWT_ISSUER or MANA_AUTH_URL)")
        }
        let audience = reader.string(Variables.audience)
        let refresh = reader.seconds(Variables.refresh, in: 1...86_400)
        let fetchTimeout = reader.seconds(Variables.fetchTimeout, in: 1...300)
        let leeway = reader.seconds(Variables.leeway, in: 0...600)
        let keys = reader.list(Variables.serviceKey)
        if keys.isEmpty { reader.report("MANA_SERVICE_KEY: at least one key is required") }
        if reader.isProduction {
            for (index, key) in keys.map({ ServiceKeys.Entry(parsing: $0).key }).enumerated() {
                if Self.placeholderKeys.contains(key) {
                    reader.report("MANA_SERVICE_KEY: key \(index + 1) is a shipped placeholder; generate a random one")
                } else if key.count < 32 {
                    reader.report("MANA_SERVICE_KEY: key \(index + 1) has \(key.count) characters; production needs at least 32")
                }
            }
        }
        self.init(
            jwksURL: jwksURL, verifier: .init(issuer: issuer ?? authURL, audience: audience, leeway: leeway),
            refreshInterval: refresh, fetchTimeout: fetchTimeout, serviceKeys: keys)
    }
}
