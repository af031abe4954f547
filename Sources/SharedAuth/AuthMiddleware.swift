import Crypto
import Foundation
import HTTPKit
import HTTPTypes
import Hummingbird

/// Requires a valid bearer token and puts its user in the request context; 401 otherwise.
package struct JWTAuthMiddleware<Context: AuthRequestContext>: RouterMiddleware {
    let verifier: TokenVerifier
    let wording: AuthErrorWording

    package init(verifier: TokenVerifier, wording: AuthErrorWording = .detailed) {
        self.verifier = verifier
        self.wording = wording
    }

    package func handle(
        _ request: Request, context: Context, next: (Request, Context) async throws -> Response
    ) async throws -> Response {
        guard let header = request.headers[.authorization] else { throw wording.apiError(for: .missingHeader) }
        guard header.count > 7, header.prefix(7).lowercased() == "bearer " else { throw wording.apiError(for: .notBearer) }
        let token = header.dropFirst(7).trimmingCharacters(in: .whitespaces)
        var context = context
        do {
            context.user = try await verifier.verify(token)
        } catch {
            context.logger.info("token refused", metadata: ["reason": "\(error.message)"])
            throw wording.apiError(for: error)
        }
        context.logger[metadataKey: "user_id"] = .string(context.user!.id)
        return try await next(request, context)
    }
}

/// Requires `X-Service-Key` equal to one of the configured keys (compared in constant
/// time) and exposes `X-App-Id` (default `unknown`); 401 otherwise.
package struct ServiceKeyMiddleware<Context: AuthRequestContext>: RouterMiddleware {
    let keys: ServiceKeys
    let wording: AuthErrorWording

    package init(keys: ServiceKeys, wording: AuthErrorWording = .detailed) {
        self.keys = keys
        self.wording = wording
    }

    package func handle(
        _ request: Request, context: Context, next: (Request, Context) async throws -> Response
    ) async throws -> Response {
        guard let presented = request.headers[.serviceKey], !presented.isEmpty else {
            throw wording.apiError(for: .missingServiceKey)
        }
        guard keys.accepts(presented) else { throw wording.apiError(for: .wrongServiceKey) }
        var context = context
        let appID = request.headers[.appID].flatMap { $0.isEmpty ? nil : String($0.prefix(64)) } ?? "unknown"
        context.callerAppID = appID
        return try await next(request, context)
    }
}

/// The accepted service keys (several during a rotation).
package struct ServiceKeys: Sendable {
    private let digests: [SHA256.Digest]

    package init(_ keys: [String]) {
        self.digests = keys.filter { !$0.isEmpty }.map { SHA256.hash(data: Data($0.utf8)) }
    }

    /// True when `presented` equals one of the keys. Every key is compared, each in
    /// constant time over fixed-length digests, so timing reveals neither key nor match.
    package func accepts(_ presented: String) -> Bool {
        let candidate = SHA256.hash(data: Data(presented.utf8))
        var matched = false
        for digest in digests {
            var difference: UInt8 = 0
            for (a, b) in zip(digest, candidate) { difference |= a ^ b }
            matched = matched || difference == 0
        }
        return matched
    }
}

extension HTTPField.Name {
    /// `X-Service-Key`.
    package static var serviceKey: Self { .init("X-Service-Key")! }
    /// `X-App-Id`.
    package static var appID: Self { .init("X-App-Id")! }
}
