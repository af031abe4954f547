import Foundation
import JWTKit
import SharedAuth
import Testing
import TestSupport

@Suite(.timeLimit(.minutes(3))) struct TokenVerifierTests {
    let keys = TestKeys()

    /// A started JWKS server and a verifier that reads it.
    func verifier(
        issuer: String? = "https://auth.example", audience: String? = "mana", refetchInterval: Duration = .seconds(5),
        document: Data? = nil
    ) async throws -> (TokenVerifier, JWKSKeyStore, JWKSServer) {
        let server = try JWKSServer()
        server.serve(try document ?? keys.jwks())
        try await server.start()
        let store = JWKSKeyStore(url: server.url, minimumRefetchInterval: refetchInterval, logger: TestDatabase.logger)
        await store.refresh()
        return (TokenVerifier(keys: store, options: .init(issuer: issuer, audience: audience)), store, server)
    }

    @Test func validEdDSATokenPassesWithItsClaims() async throws {
        let (verifier, _, server) = try await verifier()
        defer { Task { await server.stop() } }
        let exp = (Date().timeIntervalSince1970 + 600).rounded(.down)
        let user = try await verifier.verify(try await keys.edToken(TestKeys.claims(exp: exp, role: "admin")))
        // validUntil: exp plus the 30 s leeway, when sockets and streams opened with it end.
        #expect(user == AuthenticatedUser(
            id: "user-1", email: "a@example.com", role: "admin", sessionID: "s-1", validUntil: Date(timeIntervalSince1970: exp + 30)))
        #expect(user.isAdmin)
        let plain = try await verifier.verify(try await keys.edToken())
        #expect(plain.role == "user")
    }

    @Test func es256AndRS256TokensPassWithTheirKeys() async throws {
        let (verifier, _, server) = try await verifier()
        defer { Task { await server.stop() } }
        #expect(try await verifier.verify(try await keys.esToken()).id == "user-1")
        #expect(try await verifier.verify(try await keys.rsToken()).id == "user-1")
    }

    @Test func badTokensAreRejectedForTheirReason() async throws {
        let (verifier, _, server) = try await verifier()
        defer { Task { await server.stop() } }
        let now = Date().timeIntervalSince1970
        let valid = try await keys.edToken()
        let parts = valid.split(separator: ".").map(String.init)
        let otherPayload = try JSONEncoder().encode(TestKeys.claims(sub: "someone-else")).base64URLEncodedString()
        let cases: [(String, AuthError)] = [
            (try await keys.edToken(TestKeys.claims(exp: now - 120)), .expired),
            (try await keys.edToken(TestKeys.claims(nbf: now + 600)), .notYetValid),
            (try await keys.edToken(TestKeys.claims(iss: "https://evil.example")), .wrongIssuer),
            (try await keys.edToken(TestKeys.claims(aud: "other")), .wrongAudience),
            (try await keys.edToken(TestKeys.claims(sub: nil)), .missingSubject),
            (try await keys.edToken(TestKeys.claims(sub: "")), .missingSubject),
            (try keys.noneToken(), .algorithmNotAllowed),
            (try await keys.hmacWithPublicKeyToken(), .algorithmNotAllowed),
            (parts[0] + "." + otherPayload + "." + parts[2], .badSignature),
            (try await keys.edToken(kid: "nobody"), .unknownKey),
            ("not-a-jwt", .malformed),
        ]
        for (token, expected) in cases {
            do {
                _ = try await verifier.verify(token)
                Issue.record("accepted a token that should fail with \(expected)")
            } catch {
                #expect(error == expected)
            }
        }
    }

    @Test func leewayAcceptsSmallClockSkew() async throws {
        let (verifier, _, server) = try await verifier()
        defer { Task { await server.stop() } }
        let now = Date().timeIntervalSince1970
        #expect(try await verifier.verify(try await keys.edToken(TestKeys.claims(exp: now - 10))).id == "user-1")
        #expect(try await verifier.verify(try await keys.edToken(TestKeys.claims(nbf: now + 10))).id == "user-1")
    }

    @Test func issuerAndAudienceAreOptional() async throws {
        let (verifier, _, server) = try await verifier(issuer: nil, audience: nil)
        defer { Task { await server.stop() } }
        #expect(try await verifier.verify(try await keys.edToken(TestKeys.claims(iss: nil, aud: nil))).id == "user-1")
    }

    @Test func aKeyAddedAfterStartIsPickedUpOnFirstUse() async throws {
        let (verifier, _, server) = try await verifier(refetchInterval: .milliseconds(100), document: try keys.jwks(ed: false))
        defer { Task { await server.stop() } }
        try await Task.sleep(for: .milliseconds(150))
        server.serve(try keys.jwks())  // rotation: the Ed25519 key appears
        #expect(try await verifier.verify(try await keys.edToken()).id == "user-1")
    }

    /// A token verified (and cached) a moment ago is refused as soon as a refresh withdraws
    /// its key: the cache only answers under the key set it verified with.
    @Test func aWithdrawnKeyStopsItsCachedTokensAtTheNextRefresh() async throws {
        let (verifier, store, server) = try await verifier()
        defer { Task { await server.stop() } }
        let token = try await keys.edToken()
        #expect(try await verifier.verify(token).id == "user-1")
        #expect(try await verifier.verify(token).id == "user-1")  // answered from the cache
        server.serve(try keys.jwks(ed: false))
        await store.refresh()
        await #expect(throws: AuthError.unknownKey) { try await verifier.verify(token) }
    }

    @Test func manyUnknownKidsCauseAtMostOneRefetch() async throws {
        let (verifier, _, server) = try await verifier(refetchInterval: .seconds(30))
        defer { Task { await server.stop() } }
        let before = server.fetches
        let token = try await keys.edToken(kid: "unknown-kid")
        let refused = await withTaskGroup(of: Bool.self) { group in
            for _ in 0..<100 {
                group.addTask { (try? await verifier.verify(token)) == nil }
            }
            return await group.reduce(0) { $0 + ($1 ? 1 : 0) }
        }
        #expect(refused == 100)
        #expect(server.fetches - before <= 1)
    }

    @Test func aServiceStartedWhileTheJWKSIsDownRecovers() async throws {
        let server = try JWKSServer()
        server.serve(try keys.jwks())
        let store = JWKSKeyStore(url: server.url, minimumRefetchInterval: .milliseconds(100), logger: TestDatabase.logger)
        await store.refresh()  // refused: nothing listens yet
        let verifier = TokenVerifier(keys: store, options: .init(issuer: "https://auth.example", audience: "mana"))
        let token = try await keys.edToken()
        await #expect(throws: AuthError.unknownKey) { try await verifier.verify(token) }
        try await server.start()
        defer { Task { await server.stop() } }
        try await Task.sleep(for: .milliseconds(150))
        #expect(try await verifier.verify(token).id == "user-1")
    }

    @Test func aFailedRefreshKeepsTheKeys() async throws {
        let (verifier, store, server) = try await verifier()
        await server.stop()
        await store.refresh()
        #expect(try await verifier.verify(try await keys.edToken()).id == "user-1")
    }
}
