import HTTPKit
import SharedAuth
import Testing

/// What production refuses in the shared auth settings.
@Suite struct AuthSettingsTests {
    static func problems(_ environment: [String: String]) -> [String] {
        var reader = ConfigReader(environment: ["MANA_ENV": "production", "MANA_AUTH_URL": "https://auth.mana.how"].merging(environment) { $1 })
        _ = AuthSettings(readingTokenRules: &reader)
        return reader.problems
    }

    @Test func productionRefusesShortAndPlaceholderServiceKeysInEveryEntry() {
        let strong = String(repeating: "a1", count: 20)
        #expect(Self.problems(["MANA_SERVICE_KEY": strong]).isEmpty)
        #expect(Self.problems(["MANA_SERVICE_KEY": "\(strong),short"]).contains { $0.contains("key 2 has 5 characters") })
        #expect(Self.problems(["MANA_SERVICE_KEY": "replace-with-a-long-random-key,\(strong)"]).contains { $0.contains("key 1 is a shipped placeholder") })
        #expect(!Self.problems(["MANA_SERVICE_KEY": "compose-service-key"]).isEmpty)
    }

    @Test func theIssuerAndAudienceAreAlwaysChecked() {
        var reader = ConfigReader(environment: [:])
        let settings = AuthSettings(readingTokenRules: &reader)
        #expect(settings.verifier.issuer == "http://localhost:3001" && settings.verifier.audience == "mana")
        #expect(settings.jwksURL == "http://localhost:3001/api/auth/jwks")
        #expect(Self.problems(["MANA_AUTH_URL": "", "MANA_SERVICE_KEY": String(repeating: "k", count: 32)]).contains { $0.hasPrefix("JWT_ISSUER") })
    }

    @Test func theJWKSFetchTimeoutIsFiveSecondsUnlessSetAndBounded() {
        var defaults = ConfigReader(environment: [:])
        #expect(AuthSettings(readingTokenRules: &defaults).fetchTimeout == .seconds(5))
        var set = ConfigReader(environment: ["JWKS_FETCH_TIMEOUT": "30"])
        #expect(AuthSettings(readingTokenRules: &set).fetchTimeout == .seconds(30))
        #expect(set.problems.isEmpty)
        #expect(Self.problems(["JWKS_FETCH_TIMEOUT": "0", "MANA_SERVICE_KEY": String(repeating: "k", count: 32)]).contains { $0.contains("JWKS_FETCH_TIMEOUT") })
    }
}
