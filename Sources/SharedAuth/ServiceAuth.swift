import Logging

/// Everything a service needs to authenticate requests: the JWKS keys and their refresh
/// service, the token verifier, and the middleware for user and service-key routes.
///
/// ```swift
/// let auth = ServiceAuth(settings: configuration.auth, logger: logger)
/// chassis.addService(auth.refreshService)
/// let user = chassis.router.group("api/v1/credits").add(middleware: auth.userMiddleware())
/// ```
package struct ServiceAuth: Sendable {
    package let keys: JWKSKeyStore
    package let verifier: TokenVerifier
    package let serviceKeys: ServiceKeys
    package let refreshService: JWKSRefreshService
    /// How the middleware words its 401s.
    package let wording: AuthErrorWording

    package init(settings: AuthSettings, logger: Logger, wording: AuthErrorWording = .detailed) {
        keys = JWKSKeyStore(url: settings.jwksURL, fetchTimeout: settings.fetchTimeout, logger: logger)
        verifier = TokenVerifier(keys: keys, options: settings.verifier)
        serviceKeys = ServiceKeys(settings.serviceKeys)
        refreshService = JWKSRefreshService(keys: keys, interval: settings.refreshInterval)
        self.wording = wording
    }

    /// Middleware requiring a valid bearer token.
    package func userMiddleware<Context: AuthRequestContext>() -> JWTAuthMiddleware<Context> {
        JWTAuthMiddleware(verifier: verifier, wording: wording)
    }

    /// Middleware requiring a valid `X-Service-Key`.
    package func serviceKeyMiddleware<Context: AuthRequestContext>() -> ServiceKeyMiddleware<Context> {
        ServiceKeyMiddleware(keys: serviceKeys, wording: wording)
    }
}
