import SharedAuth

extension AuthErrorWording {
    /// The original mana-credits' three 401 texts: the web app shows them as they are.
    static let credits = AuthErrorWording { error in
        switch error {
        case .missingHeader, .notBearer: "Missing or invalid Authorization header"
        case .missingServiceKey, .wrongServiceKey: "Invalid or missing service key"
        case .malformed, .algorithmNotAllowed, .unknownKey, .badSignature, .expired, .notYetValid, .missingSubject,
            .wrongIssuer, .wrongAudience:
            "Invalid or expired token"
        }
    }
}
