import AsyncHTTPClient
import Foundation
import HTTPKit
import Hummingbird
import NIOCore
import NIOHTTP1

/// Real, concurrent HTTP requests to a service under test. (HummingbirdTesting's live client
/// sends every request over one connection, one at a time, so it cannot test concurrency.)
package struct HTTPCaller: Sendable {
    package let baseURL: String

    package init(port: Int) {
        self.baseURL = "http://127.0.0.1:\(port)"
    }

    /// Sends a request and decodes the JSON answer (`null` for an empty body).
    package func send(_ method: HTTPRequest.Method, _ uri: String, headers: HTTPFields, body: String?) async throws
        -> (status: HTTPResponse.Status, body: JSONValue)
    {
        var request = HTTPClientRequest(url: baseURL + uri)
        request.method = HTTPMethod(rawValue: method.rawValue)
        for field in headers { request.headers.add(name: field.name.rawName, value: field.value) }
        if let body { request.body = .bytes(ByteBuffer(string: body)) }
        let response = try await HTTPClient.shared.execute(request, timeout: .seconds(60))
        let bytes = try await response.body.collect(upTo: 64 << 20)
        let data = Data(buffer: bytes)
        let json = data.isEmpty ? JSONValue.null : try JSONDecoder().decode(JSONValue.self, from: data)
        return (HTTPResponse.Status(code: Int(response.status.code)), json)
    }
}
