import Foundation
import JWTKit

/// An Ed25519 signing key for local development and tests: it writes a JWKS document the
/// services can load with `JWKS_URL=file://…`, and mints tokens as mana-auth would.
package struct DevelopmentSigningKey: Sendable {
    package let kid: String
    package let privateKey: EdDSA.PrivateKey

    /// A new random key.
    package init(kid: String = "dev-\(UUID().uuidString.prefix(8).lowercased())") throws {
        self.kid = kid
        self.privateKey = try EdDSA.PrivateKey(curve: .ed25519)
    }

    /// A key stored by ``save(to:)``.
    package init(contentsOf path: String) throws {
        struct Stored: Decodable { let kid: String; let d: String }
        let stored = try JSONDecoder().decode(Stored.self, from: Data(contentsOf: URL(fileURLWithPath: path)))
        self.kid = stored.kid
        self.privateKey = try EdDSA.PrivateKey(d: stored.d, curve: .ed25519)
    }

    /// Writes the private key (mode 0600) as a small JSON file.
    package func save(to path: String) throws {
        let d = privateKey.rawRepresentation.base64URLEncodedString()
        let json = try JSONSerialization.data(withJSONObject: ["kid": kid, "d": d], options: [.sortedKeys])
        guard FileManager.default.createFile(atPath: path, contents: json, attributes: [.posixPermissions: 0o600]) else {
            throw CocoaError(.fileWriteUnknown, userInfo: [NSFilePathErrorKey: path])
        }
    }

    /// The public JWKS entry of this key.
    package var jwk: [String: String] {
        ["kty": "OKP", "crv": "Ed25519", "use": "sig", "alg": "EdDSA", "kid": kid,
         "x": privateKey.publicKey.rawRepresentation.base64URLEncodedString()]
    }

    /// A JWKS document holding this key.
    package func jwksDocument() throws -> Data {
        try JSONSerialization.data(withJSONObject: ["keys": [jwk]], options: [.sortedKeys])
    }

    /// A token for `userID`, valid for `lifetime`; issuer and audience default to what both
    /// services expect in development (`MANA_AUTH_URL` http://localhost:3001, `mana`).
    package func mint(
        userID: String, email: String? = nil, role: String = "user", sessionID: String? = nil,
        issuer: String? = "http://localhost:3001", audience: String? = "mana", lifetime: Duration = .seconds(3600), now: Date = Date(),
        name: String? = nil
    ) async throws -> String {
        let keys = JWTKeyCollection()
        await keys.add(eddsa: privateKey, kid: JWKIdentifier(string: kid))
        let time = now.timeIntervalSince1970.rounded(.down)
        let claims = ManaClaims(
            sub: userID, exp: time + Double(lifetime.components.seconds), nbf: nil, iat: time, iss: issuer,
            aud: audience.map { .one($0) }, email: email, role: role, sid: sessionID, name: name)
        return try await keys.sign(claims, kid: JWKIdentifier(string: kid))
    }
}

extension Data {
    /// Base64url without padding, as JOSE uses.
    package func base64URLEncodedString() -> String {
        base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }
}
