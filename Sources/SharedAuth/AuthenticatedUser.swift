import Foundation
import JWTKit

/// The verified user behind a request, from the token's claims.
package struct AuthenticatedUser: Sendable, Equatable {
    /// `sub`: the user id.
    package let id: String
    package let email: String?
    /// `role`, `user` when absent.
    package let role: String
    /// `sid`: the mana-auth session id.
    package let sessionID: String?
    /// `name`: the display name, when mana-auth puts one in the token.
    package let name: String?
    /// When the token stops being accepted (`exp` plus the leeway): long-lived connections
    /// opened with it (WebSocket, SSE) end then. Nil for users not made from a token.
    package let validUntil: Date?

    package init(
        id: String, email: String? = nil, role: String = "user", sessionID: String? = nil, name: String? = nil, validUntil: Date? = nil
    ) {
        self.id = id
        self.email = email
        self.role = role
        self.sessionID = sessionID
        self.name = name
        self.validUntil = validUntil
    }

    package var isAdmin: Bool { role == "admin" }
}

/// The claims mana-auth puts in its tokens. Every check is made by ``TokenVerifier``
/// (jwt-kit verifies nothing a payload does not check itself, and has no leeway).
package struct ManaClaims: JWTPayload, Equatable {
    package var sub: String?
    package var exp: Double?
    package var nbf: Double?
    package var iat: Double?
    package var iss: String?
    package var aud: Audience?
    package var email: String?
    package var role: String?
    package var sid: String?
    package var name: String?

    package init(
        sub: String?, exp: Double?, nbf: Double? = nil, iat: Double? = nil, iss: String? = nil, aud: Audience? = nil,
        email: String? = nil, role: String? = nil, sid: String? = nil, name: String? = nil
    ) {
        self.sub = sub
        self.exp = exp
        self.nbf = nbf
        self.iat = iat
        self.iss = iss
        self.aud = aud
        self.email = email
        self.role = role
        self.sid = sid
        self.name = name
    }

    package func verify(using algorithm: some JWTAlgorithm) throws {}

    /// `aud` is a string or an array of strings.
    package enum Audience: Codable, Sendable, Equatable {
        case one(String)
        case many([String])

        package var values: [String] {
            switch self {
            case .one(let value): [value]
            case .many(let values): values
            }
        }

        package init(from decoder: any Decoder) throws {
            let container = try decoder.singleValueContainer()
            if let one = try? container.decode(String.self) {
                self = .one(one)
            } else {
                self = .many(try container.decode([String].self))
            }
        }

        package func encode(to encoder: any Encoder) throws {
            var container = encoder.singleValueContainer()
            switch self {
            case .one(let value): try container.encode(value)
            case .many(let values): try container.encode(values)
            }
        }
    }
}
