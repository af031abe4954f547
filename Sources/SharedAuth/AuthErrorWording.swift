import HTTPKit

/// The texts a service answers its 401s with: each service keeps the wording of the
/// original it replaces, so clients that show or match them see no change.
///
/// ```swift
/// let auth = ServiceAuth(settings: settings, logger: logger, wording: .init { _ in "Unauthorized" })
/// ```
package struct AuthErrorWording: Sendable {
    private let text: @Sendable (AuthError) -> String

    package init(_ text: @escaping @Sendable (AuthError) -> String) {
        self.text = text
    }

    /// One message per failure, saying exactly what was wrong (``AuthError/message``).
    package static let detailed = AuthErrorWording { $0.message }

    /// The 401 answer for `error` in this wording.
    package func apiError(for error: AuthError) -> APIError {
        APIError(.unauthorized, message: text(error))
    }
}
