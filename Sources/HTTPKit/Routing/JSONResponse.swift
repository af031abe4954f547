import Foundation
import Hummingbird

/// A JSON response with a chosen status, encoded with sorted keys and ISO 8601 dates.
package struct JSONResponse: ResponseGenerator {
    let status: HTTPResponse.Status
    let body: ByteBuffer
    let headers: HTTPFields

    package init(_ value: some Encodable, status: HTTPResponse.Status = .ok, headers: HTTPFields = [:]) throws {
        self.status = status
        self.body = ByteBuffer(data: try JSONEncoder.sortedKeys.encode(value))
        self.headers = headers
    }

    /// Bytes that already are JSON (built by hand on a hot path), sent as they are.
    package init(rawJSON: [UInt8], status: HTTPResponse.Status = .ok, headers: HTTPFields = [:]) {
        self.init(rawJSON: ByteBuffer(bytes: rawJSON), status: status, headers: headers)
    }

    /// A buffer that already is JSON, sent without a copy (pages of 1,000 changes).
    package init(rawJSON: ByteBuffer, status: HTTPResponse.Status = .ok, headers: HTTPFields = [:]) {
        self.status = status
        self.body = rawJSON
        self.headers = headers
    }

    package func response(from request: Request, context: some RequestContext) throws -> Response {
        var headers = self.headers
        headers[.contentType] = "application/json; charset=utf-8"
        return Response(status: status, headers: headers, body: .init(byteBuffer: body))
    }
}
