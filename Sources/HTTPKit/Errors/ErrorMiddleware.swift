import Foundation
import Hummingbird
import Logging
import PostgresNIO

/// Turns every error a handler throws into a JSON answer in the service's envelope.
///
/// `APIError` is rendered as is; Hummingbird's own errors (404 from the router, 413 from a
/// body over its limit) keep their status; a `PostgresTransactionError` is unwrapped first;
/// anything else is a 500 with a generic message, its cause logged but never sent.
package struct ErrorMiddleware<Context: RequestContext>: RouterMiddleware {
    let envelope: ErrorEnvelope

    package init(envelope: ErrorEnvelope) {
        self.envelope = envelope
    }

    package func handle(
        _ request: Request, context: Context, next: (Request, Context) async throws -> Response
    ) async throws -> Response {
        do {
            return try await next(request, context)
        } catch {
            let apiError = Self.apiError(for: error, logger: context.logger)
            return envelope.response(for: apiError)
        }
    }

    /// Maps any error to the `APIError` the client sees.
    package static func apiError(for error: any Error, logger: Logger) -> APIError {
        switch error {
        case let error as APIError:
            return error
        case let error as PostgresTransactionError:
            if let inner = error.closureError ?? error.beginError ?? error.commitError { return apiError(for: inner, logger: logger) }
            return internalError(error, logger: logger)
        case let error as HTTPError:
            let message = error.body ?? defaultMessage(for: error.status)
            return APIError(error.status, message: message, headers: error.headers)
        case let error as DecodingError:
            return BodyDecoder.apiError(for: error)
        case let error as PSQLError where error.serverInfo?[.sqlState].map(Self.unstorableText.contains) == true:
            // Text PostgreSQL cannot store (a NUL character, invalid encoding) is bad input, not a failure.
            return APIError.badRequest("text must not contain NUL characters (U+0000) or invalid UTF-8")
        case let error as PSQLError where error.isConnectionProblem:
            logger.warning("database unavailable", metadata: ["error": "\(String(reflecting: error))"])
            return Self.unavailableDatabase
        case is DatabaseConnectionLost:
            return Self.unavailableDatabase
        case is CancellationError:
            return APIError(.serviceUnavailable, message: "the request was cancelled")
        default:
            return internalError(error, logger: logger)
        }
    }

    /// Retryable: the database is down or the connection broke under the request.
    private static var unavailableDatabase: APIError {
        APIError(
            .serviceUnavailable, code: "database_unavailable", message: "the database is unavailable; try again shortly",
            headers: [.retryAfter: "1"])
    }

    /// character_not_in_repertoire, untranslatable_character.
    private static var unstorableText: Set<String> { ["22021", "22P05"] }

    private static func internalError(_ error: any Error, logger: Logger) -> APIError {
        logger.error("request failed", metadata: ["error": "\(String(reflecting: error))"])
        return APIError(.internalServerError, message: "internal server error")
    }

    private static func defaultMessage(for status: HTTPResponse.Status) -> String {
        switch status.code {
        case 404: "no such route"
        case 413: "request body too large"
        default: status.reasonPhrase.lowercased()
        }
    }
}

extension PSQLError {
    /// The connection to PostgreSQL broke or could not be made (a restart, a failover, a
    /// terminated backend): the work may succeed when retried, so 503, not 500.
    package var isConnectionProblem: Bool {
        switch code {
        case .connectionError, .serverClosedConnection, .clientClosedConnection, .uncleanShutdown, .poolClosed:
            return true
        case .server:
            // 08xxx connection exceptions; 57P01-57P03 admin/crash shutdown, cannot connect now.
            let state = serverInfo?[.sqlState] ?? ""
            return state.hasPrefix("08") || ["57P01", "57P02", "57P03"].contains(state)
        default:
            return false
        }
    }
}
