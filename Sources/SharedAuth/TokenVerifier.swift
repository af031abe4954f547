import Foundation
import HTTPKit
import JWTKit

/// Verifies mana-auth's bearer tokens against the JWKS keys.
///
/// The algorithm comes from the key, never from the token: the token's `alg` must equal
/// the algorithm of the key its `kid` names, so `alg: none`, HMAC with a public key as
/// secret and any mismatch are refused before a signature is looked at.
package struct TokenVerifier: Sendable {
    package struct Options: Sendable {
        /// Required `iss`, when set.
        package var issuer: String?
        /// Required member of `aud`, when set.
        package var audience: String?
        /// Allowed clock skew for `exp` and `nbf`.
        package var leeway: Duration

        package init(issuer: String? = nil, audience: String? = nil, leeway: Duration = .seconds(30)) {
            self.issuer = issuer
            self.audience = audience
            self.leeway = leeway
        }
    }

    let keys: JWKSKeyStore
    let options: Options
    /// Tokens verified recently under the current key set (nil: verify every time).
    let cache: VerifiedTokenCache?

    package init(keys: JWKSKeyStore, options: Options, cache: VerifiedTokenCache? = VerifiedTokenCache()) {
        self.keys = keys
        self.options = options
        self.cache = cache
    }

    /// The user of a valid token; otherwise an ``AuthError`` saying what was wrong. A token
    /// verified a moment ago under the same keys is answered from ``VerifiedTokenCache``.
    package func verify(_ token: String, now: Date = Date()) async throws(AuthError) -> AuthenticatedUser {
        let keySet = keys.keySet
        if let user = cache?.user(for: token, keySet: keySet, now: now) { return user }
        let user = try await verifySignatureAndClaims(token, now: now)
        cache?.store(token, user: user, keySet: keySet, now: now)
        return user
    }

    private func verifySignatureAndClaims(_ token: String, now: Date) async throws(AuthError) -> AuthenticatedUser {
        let parts = token.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 3, let headerData = Self.base64URLDecode(parts[0]),
            let header = try? JSONDecoder().decode(Header.self, from: headerData)
        else { throw .malformed }
        guard let alg = header.alg, alg.lowercased() != "none" else { throw .algorithmNotAllowed }
        guard let kid = header.kid, !kid.isEmpty else { throw .unknownKey }
        var key = await keys.key(for: kid)
        if key == nil {
            await keys.refetchForUnknownKey()
            key = await keys.key(for: kid)
        }
        guard let key else { throw .unknownKey }
        guard key.algorithm == alg else { throw .algorithmNotAllowed }

        let claims: ManaClaims
        do {
            claims = try await keys.collection.verify(token, as: ManaClaims.self)
        } catch {
            throw .badSignature
        }
        let leeway = options.leeway.inSeconds
        let time = now.timeIntervalSince1970
        guard let exp = claims.exp else { throw .expired }
        guard time <= exp + leeway else { throw .expired }
        if let nbf = claims.nbf, time + leeway < nbf { throw .notYetValid }
        guard let sub = claims.sub, !sub.isEmpty else { throw .missingSubject }
        if let issuer = options.issuer, claims.iss != issuer { throw .wrongIssuer }
        if let audience = options.audience, !(claims.aud?.values.contains(audience) ?? false) { throw .wrongAudience }
        return AuthenticatedUser(
            id: sub, email: claims.email, role: claims.role ?? "user", sessionID: claims.sid, name: claims.name,
            validUntil: Date(timeIntervalSince1970: exp + leeway))
    }

    private struct Header: Decodable {
        let alg: String?
        let kid: String?
    }

    static func base64URLDecode(_ text: Substring) -> Data? {
        var base64 = text.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        while base64.count % 4 != 0 { base64 += "=" }
        return Data(base64Encoded: base64)
    }
}

/// Why a request was not authenticated. Messages never repeat the token or key.
package enum AuthError: Error, Sendable, Equatable {
    case missingHeader
    case notBearer
    case malformed
    case algorithmNotAllowed
    case unknownKey
    case badSignature
    case expired
    case notYetValid
    case missingSubject
    case wrongIssuer
    case wrongAudience
    case missingServiceKey
    case wrongServiceKey

    package var message: String {
        switch self {
        case .missingHeader: "missing Authorization header"
        case .notBearer: "Authorization header is not a bearer token"
        case .malformed: "token is malformed"
        case .algorithmNotAllowed: "token algorithm is not allowed for its key"
        case .unknownKey: "token is signed with an unknown key"
        case .badSignature: "token signature is invalid"
        case .expired: "token has expired"
        case .notYetValid: "token is not valid yet"
        case .missingSubject: "token has no subject"
        case .wrongIssuer: "token issuer is not accepted"
        case .wrongAudience: "token audience is not accepted"
        case .missingServiceKey: "missing X-Service-Key header"
        case .wrongServiceKey: "invalid service key"
        }
    }

    /// The 401 answer for this failure.
    package var apiError: APIError {
        APIError(.unauthorized, message: message)
    }
}
