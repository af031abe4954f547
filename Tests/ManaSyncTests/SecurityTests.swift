import Foundation
import HTTPKit
import Hummingbird
import SharedAuth
import Testing
import TestSupport

@testable import ManaSync

/// Attacks on mana-sync from the security review, each reproduced against the service.
@Suite(.timeLimit(.minutes(3))) struct SecurityTests {
    static let epoch = "1970-01-01T00:00:00.000000Z"

    /// A token mana-auth signed for another purpose (another audience, another issuer, or
    /// none) must not open sync, even when the deployment sets no JWT variables.
    @Test func tokensForAnotherAudienceOrIssuerAreRefusedByDefault() async throws {
        try await SyncHarness.run { (h: SyncHarness) async throws in
            let pull = "/sync/todo/pull?collection=t&since=\(Self.epoch)"
            let good = try await h.key.mint(userID: "mallory")
            #expect(try await h.caller.send(.get, pull, headers: [.authorization: "Bearer \(good)"]).status == .ok)
            for token in [
                try await h.key.mint(userID: "mallory", audience: "another-app"),
                try await h.key.mint(userID: "mallory", audience: nil),
                try await h.key.mint(userID: "mallory", issuer: "https://evil.example"),
                try await h.key.mint(userID: "mallory", issuer: nil),
            ] {
                let answer = try await h.caller.send(.get, pull, headers: [.authorization: "Bearer \(token)"])
                #expect(answer.status == .unauthorized, "\(answer.body)")
            }
        }
    }

    @Test func productionRefusesToStartWithoutTheTokenIssuer() {
        var reader = ConfigReader(environment: [
            "MANA_ENV": "production", "MANA_SERVICE_KEY": String(repeating: "k", count: 40),
            "DATABASE_URL": "postgresql://mana@db.internal/mana_sync?sslmode=verify-full",
        ])
        _ = SyncConfiguration(reading: &reader)
        #expect(reader.problems.contains { $0.hasPrefix("JWT_ISSUER") }, "\(reader.problems)")

        var configured = ConfigReader(environment: ["MANA_AUTH_URL": "https://auth.mana.how"])
        let configuration = SyncConfiguration(reading: &configured)
        #expect(configuration.auth.verifier.issuer == "https://auth.mana.how")
        #expect(configuration.auth.verifier.audience == "mana")
        #expect(configuration.auth.jwksURL == "https://auth.mana.how/api/auth/jwks")
    }
}
