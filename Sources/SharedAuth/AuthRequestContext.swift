import HTTPKit
import Hummingbird
import NIOCore

/// A request context that can carry the authenticated user and the calling service.
package protocol AuthRequestContext: RequestContext {
    var user: AuthenticatedUser? { get set }
    /// `X-App-Id` of a service-key call (`unknown` when absent).
    var callerAppID: String? { get set }
    /// The name of the service key a service-key call presented (`name:key` entries); nil when unnamed.
    var callerName: String? { get set }
}

extension AuthRequestContext {
    /// The authenticated user; 401 if the route was not behind ``JWTAuthMiddleware``.
    package func requireUser() throws -> AuthenticatedUser {
        guard let user else { throw AuthError.missingHeader.apiError }
        return user
    }
}

/// The request context both services use.
package struct AppRequestContext: AuthRequestContext, BodyDecodingRequestContext, RemoteAddressRequestContext {
    package var coreContext: CoreRequestContextStorage
    /// The service's body rules (set by the chassis on every request).
    package var bodyDecoder = BodyDecoder(limit: 1 << 20)
    package var user: AuthenticatedUser?
    package var callerAppID: String?
    package var callerName: String?
    /// The peer of the connection (the client, or the proxy in front of the service).
    package let remoteAddress: SocketAddress?

    package init(source: ApplicationRequestContextSource) {
        self.coreContext = .init(source: source)
        self.remoteAddress = source.channel.remoteAddress
    }
}
