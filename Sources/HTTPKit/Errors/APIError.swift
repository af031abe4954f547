import Foundation
import Hummingbird

/// An error that answers the client with a status, a message and optional details.
///
/// Throw it from a handler; ``ErrorMiddleware`` renders it in the service's ``ErrorEnvelope``.
/// ```swift
/// throw APIError.badRequest("amount must be a positive whole number", field: "amount")
/// ```
package struct APIError: Error, Sendable {
    /// HTTP status of the answer.
    package var status: HTTPResponse.Status
    /// A short machine-readable code (`bad_request`, `sync_inactive`, ...).
    package var code: String
    /// Text for the client. Never contains secrets or internal causes.
    package var message: String
    /// Structured details, e.g. `{"field": "amount"}`.
    package var details: [String: JSONValue]?
    /// Extra response headers (`Retry-After`, `Allow`, `WWW-Authenticate`).
    package var headers: HTTPFields

    package init(
        _ status: HTTPResponse.Status,
        code: String? = nil,
        message: String,
        details: [String: JSONValue]? = nil,
        headers: HTTPFields = [:]
    ) {
        self.status = status
        self.code = code ?? APIError.defaultCode(for: status)
        self.message = message
        self.details = details
        self.headers = headers
    }

    /// 400 for invalid input, naming the field when there is one.
    package static func badRequest(_ message: String, field: String? = nil) -> APIError {
        APIError(.badRequest, message: message, details: field.map { ["field": .string($0)] })
    }

    /// 401 with a message that says what was wrong with the credentials.
    package static func unauthorized(_ message: String) -> APIError {
        APIError(.unauthorized, message: message)
    }

    /// 403: authenticated, but not allowed.
    package static func forbidden(_ message: String) -> APIError {
        APIError(.forbidden, message: message)
    }

    /// 404 for a resource that does not exist (or is not the caller's).
    package static func notFound(_ message: String) -> APIError {
        APIError(.notFound, message: message)
    }

    /// 409 for a request that conflicts with what is stored.
    package static func conflict(_ message: String, details: [String: JSONValue]? = nil) -> APIError {
        APIError(.conflict, message: message, details: details)
    }

    /// 413 for a body or a batch over its limit.
    package static func tooLarge(_ message: String) -> APIError {
        APIError(.contentTooLarge, message: message)
    }

    /// 503 for a dependency that is not configured or not available.
    package static func unavailable(_ message: String) -> APIError {
        APIError(.serviceUnavailable, message: message)
    }

    static func defaultCode(for status: HTTPResponse.Status) -> String {
        switch status.code {
        case 400: "bad_request"
        case 401: "unauthorized"
        case 402: "payment_required"
        case 403: "forbidden"
        case 404: "not_found"
        case 405: "method_not_allowed"
        case 409: "conflict"
        case 413: "payload_too_large"
        case 415: "unsupported_media_type"
        case 429: "too_many_requests"
        case 503: "service_unavailable"
        case 500..<600: "internal_error"
        default: "error"
        }
    }
}

extension APIError: CustomStringConvertible {
    package var description: String { "\(status.code) \(code): \(message)" }
}

extension HTTPResponse.Status {
    /// 402 Payment Required: not enough credits, or Cloud Sync inactive.
    package static var paymentRequired: Self { .init(code: 402, reasonPhrase: "Payment Required") }
}
