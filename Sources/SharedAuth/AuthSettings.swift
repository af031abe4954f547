import HTTPKit

/// How a service verifies end-user tokens and service keys.
package struct AuthSettings: Sendable {
    package var jwksURL: String
    package var verifier: TokenVerifier.Options
    package var refreshInterval: Duration
    package var serviceKeys: [String]

    package init(jwksURL: String, verifier: TokenVerifier.Options = .init(), refreshInterval: Duration = .seconds(300), serviceKeys: [String]) {
        self.jwksURL = jwksURL
        self.verifier = verifier
        self.refreshInterval = refreshInterval
        self.serviceKeys = serviceKeys
    }

    package enum Variables {
        package static let serviceKey = EnvironmentVariable(
            "MANA_SERVICE_KEY", default: "dev-service-key",
            help: "service key(s) accepted on internal routes, comma-separated for rotation; the first is sent on outgoing calls",
            refusedInProduction: true)
        package static let refresh = EnvironmentVariable(
            "JWKS_REFRESH_INTERVAL", default: "300", help: "seconds between JWKS refreshes")
        package static let leeway = EnvironmentVariable(
            "JWT_LEEWAY", default: "30", help: "seconds of clock skew allowed for exp and nbf")
    }

    /// Reads the shared part (refresh, leeway, service keys); the caller supplies the JWKS
    /// URL and the issuer/audience rules, which differ per service.
    package init(reading reader: inout ConfigReader, jwksURL: String, issuer: String?, audience: String?) {
        let refresh = reader.seconds(Variables.refresh, in: 1...86_400)
        let leeway = reader.seconds(Variables.leeway, in: 0...600)
        let keys = reader.list(Variables.serviceKey)
        if keys.isEmpty { reader.report("MANA_SERVICE_KEY: at least one key is required") }
        self.init(
            jwksURL: jwksURL, verifier: .init(issuer: issuer, audience: audience, leeway: leeway),
            refreshInterval: refresh, serviceKeys: keys)
    }
}
