import Foundation
import HTTPTypes
import Hummingbird
import Logging

/// Gives every request an id (the client's `X-Request-Id` when it is sane, else a new one),
/// echoes it on the response, puts it in the request's logger metadata and logs one line
/// per request with method, route, status and duration. Query strings, headers and bodies
/// are never logged: they may carry tokens, keys or personal data.
///
/// Not Hummingbird's `LogRequestsMiddleware`: it logs before the handler runs (no status or
/// duration) and neither takes nor echoes a request id; the one line per finished request,
/// with the id the caller can quote, is what operations.md describes (`request_id` on every line).
package struct RequestLogMiddleware<Context: RequestContext>: RouterMiddleware {
    package init() {}

    package func handle(
        _ request: Request, context: Context, next: (Request, Context) async throws -> Response
    ) async throws -> Response {
        let requestID = Self.requestID(from: request.headers[.requestID]) ?? context.id
        var context = context
        context.logger[metadataKey: "request_id"] = .string(requestID)
        let start = ContinuousClock.now
        var response = try await next(request, context)
        response.headers[.requestID] = requestID
        let elapsed = ContinuousClock.now - start
        let milliseconds = elapsed.inSeconds * 1000
        let level: Logger.Level = response.status.code >= 500 ? .error : .info
        context.logger.log(
            level: level, "request",
            metadata: [
                "method": .string(request.method.rawValue),
                "path": .string(request.uri.path),
                "route": .string(context.endpointPath ?? "-"),
                "status": .stringConvertible(response.status.code),
                "duration_ms": .string(String(format: "%.2f", milliseconds)),
            ])
        return response
    }

    /// Accepts 1–128 characters of letters, digits and `-_.:`; anything else gets a fresh id.
    static func requestID(from header: String?) -> String? {
        guard let header, (1...128).contains(header.utf8.count),
            header.utf8.allSatisfy({ byte in
                (48...57).contains(byte) || (65...90).contains(byte) || (97...122).contains(byte) || [45, 95, 46, 58].contains(byte)
            })
        else { return nil }
        return header
    }
}

extension HTTPField.Name {
    /// `X-Request-Id`.
    package static var requestID: Self { .init("X-Request-Id")! }
}
