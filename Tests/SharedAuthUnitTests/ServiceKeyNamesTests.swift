import HTTPKit
import SharedAuth
import Testing

/// `MANA_SERVICE_KEY` entries `name:key`: the name identifies the caller, the key is the secret.
@Suite struct ServiceKeyNamesTests {
    @Test func aShortLowercasePrefixNamesTheKey() {
        let keys = ServiceKeys(["mana-auth:secret-one", "legacy", "billing:abc:def", "Upper:case", "has space:x", "empty:"])
        #expect(keys.match("secret-one") == .init(name: "mana-auth"))
        #expect(keys.match("legacy") == .init(name: nil))
        // Split on the first ':' only: the key may contain ':'.
        #expect(keys.match("abc:def") == .init(name: "billing"))
        // Not a name: the whole entry is an unnamed key.
        #expect(keys.match("Upper:case") == .init(name: nil) && keys.match("case") == nil)
        #expect(keys.match("has space:x") == .init(name: nil))
        #expect(keys.match("empty:") == .init(name: nil))
        // The whole entry is not the key.
        #expect(keys.match("mana-auth:secret-one") == nil)
        #expect(keys.match("secret-on") == nil)
    }

    @Test func theOutgoingKeyIsTheFirstEntrysKeyPartAndProductionChecksKeyParts() {
        let strong = String(repeating: "a1", count: 20)
        var reader = ConfigReader(environment: ["MANA_SERVICE_KEY": "credits:\(strong),old"])
        let settings = AuthSettings(readingTokenRules: &reader)
        #expect(settings.outgoingServiceKey == strong)
        var production = ConfigReader(
            environment: ["MANA_ENV": "production", "MANA_AUTH_URL": "https://auth.mana.how", "MANA_SERVICE_KEY": "a-long-service-name:short"])
        _ = AuthSettings(readingTokenRules: &production)
        #expect(production.problems.contains { $0.contains("key 1 has 5 characters") })
    }
}
