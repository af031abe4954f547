import Foundation
import Hummingbird

/// Reads request bodies with a size limit and a time limit, and decodes JSON with errors that
/// name the field. It is the request context's `requestDecoder` (``BodyDecodingRequestContext``),
/// so a handler decodes its typed body the Hummingbird way:
///
/// ```swift
/// let input = try await request.decode(as: UseCreditsBody.self, context: context)
/// ```
package struct BodyDecoder: RequestDecoder, Sendable {
    /// The largest body accepted, in bytes; larger ones answer 413.
    package let limit: Int
    /// How long the whole body may take to arrive; a slower one answers 408.
    package let timeout: Duration

    package init(limit: Int, timeout: Duration = .seconds(30)) {
        self.limit = limit
        self.timeout = timeout
    }

    /// Collects the raw body, refusing one over the limit with 413 and one that trickles in
    /// slower than `timeout` with 408 (a slow-loris body otherwise holds a connection forever:
    /// every byte resets the connection's idle timer).
    package func collect(_ request: Request) async throws -> ByteBuffer {
        if let declared = request.headers[.contentLength].flatMap(Int.init), declared > limit {
            throw APIError.tooLarge("request body is larger than \(limit) bytes")
        }
        let limit = limit
        do {
            return try await withTimeout(timeout) { try await request.body.collect(upTo: limit) }
        } catch is TimeoutError {
            throw APIError(.requestTimeout, message: "request body did not arrive within \(timeout.secondsText) s")
        } catch let error as HTTPError where error.status == .contentTooLarge {
            throw APIError.tooLarge("request body is larger than \(limit) bytes")
        }
    }

    /// Decodes a JSON body into `T`; malformed JSON, missing fields and wrong types answer 400.
    package func decode<T: Decodable>(_ type: T.Type, from request: Request, context: some RequestContext) async throws -> T {
        let buffer = try await collect(request)
        return try Self.decode(type, from: Data(buffer: buffer, byteTransferStrategy: .noCopy))
    }

    /// Decodes a JSON body into `T`, or nil for an empty body (routes whose body is optional).
    package func decodeIfPresent<T: Decodable>(_ type: T.Type, from request: Request) async throws -> T? {
        let buffer = try await collect(request)
        guard buffer.readableBytes > 0 else { return nil }
        return try Self.decode(type, from: Data(buffer: buffer, byteTransferStrategy: .noCopy))
    }

    /// The body as a JSON value, parsed by ``JSONParser`` (for bodies read member by member;
    /// much cheaper than decoding a `JSONValue` with `JSONDecoder`). Errors as ``decode(_:from:)``'s.
    package func json(from request: Request) async throws -> JSONValue {
        try Self.json(from: try await collect(request))
    }

    /// The body's bytes, checked as ``json(from:)-(ByteBuffer)`` checks them before parsing (not
    /// empty, UTF-8): for a route that reads its common bodies its own way and the others with
    /// ``json(from:)-(ByteBuffer)``.
    package func jsonText(from request: Request) async throws -> ByteBuffer {
        let buffer = try await collect(request)
        try Self.checkJSONText(buffer.readableBytesView)
        return buffer
    }

    /// JSON bytes as a JSON value, with ``decode(_:from:)``'s 400s.
    package static func json(from buffer: ByteBuffer) throws -> JSONValue {
        let bytes = buffer.readableBytesView
        try checkJSONText(bytes)
        do {
            return try JSONParser.parse(bytes)
        } catch {
            throw APIError.badRequest("request body is not valid JSON")
        }
    }

    /// Decodes JSON bytes into `T`, mapping decoding failures to 400 errors naming the field.
    package static func decode<T: Decodable>(_ type: T.Type, from data: Data) throws -> T {
        try checkJSONText(data)
        do {
            return try JSONDecoder().decode(T.self, from: data)
        } catch let error as DecodingError {
            throw apiError(for: error)
        }
    }

    /// A body to read as JSON is not empty, and it is UTF-8 (RFC 8259). The decoder skips
    /// members the type does not read without looking inside them, so a body is checked whole
    /// first: bad bytes anywhere are a 400.
    private static func checkJSONText(_ bytes: some Collection<UInt8>) throws {
        guard !bytes.isEmpty else { throw APIError.badRequest("request body is empty; a JSON object is expected") }
        guard isUTF8(bytes) else { throw APIError.badRequest("request body is not valid JSON: it is not UTF-8") }
    }

    /// Whether `bytes` are well-formed UTF-8, checked in place (no copy of a 10 MB body).
    static func isUTF8(_ bytes: some Sequence<UInt8>) -> Bool {
        var iterator = bytes.makeIterator()
        var parser = Unicode.UTF8.ForwardParser()
        while true {
            switch parser.parseScalar(from: &iterator) {
            case .valid: continue
            case .emptyInput: return true
            case .error: return false
            }
        }
    }

    /// A 400 error describing what was wrong with the JSON and where.
    package static func apiError(for error: DecodingError) -> APIError {
        switch error {
        case .keyNotFound(let key, let context):
            let field = fieldPath(context.codingPath + [key])
            return .badRequest("\(field) is required", field: field)
        case .valueNotFound(let type, let context):
            let field = fieldPath(context.codingPath)
            return .badRequest("\(field) must be \(typeName(type)), not null", field: field)
        case .typeMismatch(let type, let context):
            let field = fieldPath(context.codingPath)
            if context.codingPath.isEmpty { return .badRequest("request body must be \(typeName(type))") }
            return .badRequest("\(field) must be \(typeName(type))", field: field)
        case .dataCorrupted(let context):
            if context.codingPath.isEmpty {
                return .badRequest("request body is not valid JSON")
            }
            let field = fieldPath(context.codingPath)
            return .badRequest("\(field) is invalid: \(context.debugDescription)", field: field)
        @unknown default:
            return .badRequest("request body is invalid")
        }
    }

    /// `changes[3].op` style path for a coding path.
    package static func fieldPath(_ path: [any CodingKey]) -> String {
        var text = ""
        for key in path {
            if let index = key.intValue {
                text += "[\(index)]"
            } else {
                text += text.isEmpty ? key.stringValue : ".\(key.stringValue)"
            }
        }
        return text.isEmpty ? "body" : text
    }

    private static func typeName(_ type: Any.Type) -> String {
        switch type {
        case is String.Type: "a string"
        case is Int.Type, is Int64.Type, is Int32.Type: "a whole number"
        case is Double.Type, is Float.Type: "a number"
        case is Bool.Type: "a boolean"
        case is [Any].Type: "an array"
        case is [String: Any].Type, is [String: JSONValue].Type: "a JSON object"
        default:
            "\(type)".hasPrefix("Array") ? "an array" : "a JSON object"
        }
    }
}
