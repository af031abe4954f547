import AsyncHTTPClient
import Foundation
import HTTPKit
import Hummingbird
import NIOCore
import NIOHTTP1

/// Real, concurrent HTTP requests to a service under test. (HummingbirdTesting's live client
/// sends every request over one connection, one at a time, so it cannot test concurrency.)
///
/// Each caller owns its connection pool: ``shutdown()`` closes every connection, so the
/// server under test never waits on a keep-alive connection when it stops.
package final class HTTPCaller: Sendable {
    package let baseURL: String
    private let client: HTTPClient

    package init(port: Int) {
        self.baseURL = "http://127.0.0.1:\(port)"
        var configuration = HTTPClient.Configuration()
        // Idle connections go well before the services' HTTP_IDLE_TIMEOUT (30 s): reusing one the
        // server is closing at that moment fails with "connection reset by peer".
        configuration.connectionPool = .init(idleTimeout: .seconds(10), concurrentHTTP1ConnectionsPerHostSoftLimit: 64)
        // A request waits this long for a pooled connection (AsyncHTTPClient's connect timeout,
        // 10 s by default): a hundred concurrent requests on a busy CI machine may need longer,
        // and `getConnectionFromPoolTimeout` would fail a test for the machine's load.
        configuration.timeout.connect = .seconds(30)
        self.client = HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup, configuration: configuration)
    }

    /// Closes every connection this caller opened.
    package func shutdown() async {
        try? await client.shutdown()
    }

    /// A test that failed before ``shutdown()`` would otherwise crash the whole test process
    /// (AsyncHTTPClient traps on a client released without shutdown): shut it down late.
    deinit {
        let client = self.client
        Task { try? await client.shutdown() }
    }

    /// Sends a request and returns the status, headers and body text.
    package func sendText(_ method: HTTPRequest.Method, _ uri: String, headers: HTTPFields = [:], body: String? = nil)
        async throws -> (status: HTTPResponse.Status, headers: HTTPHeaders, text: String)
    {
        var request = HTTPClientRequest(url: baseURL + uri)
        request.method = HTTPMethod(rawValue: method.rawValue)
        for field in headers { request.headers.add(name: field.name.rawName, value: field.value) }
        if let body { request.body = .bytes(ByteBuffer(string: body)) }
        let response = try await client.execute(request, timeout: .seconds(60))
        let bytes = try await response.body.collect(upTo: 64 << 20)
        return (HTTPResponse.Status(code: Int(response.status.code)), response.headers, String(buffer: bytes))
    }

    /// A counter's value on `GET /metrics` (0 while it has none).
    package func counter(_ name: String) async throws -> Int {
        let metrics = try await sendText(.get, "/metrics").text
        let line = metrics.split(separator: "\n").first { $0.hasPrefix("\(name) ") }
        return line.flatMap { Double($0.split(separator: " ")[1]) }.map { Int($0) } ?? 0
    }

    /// Sends a request and decodes the JSON answer (`null` for an empty body).
    package func send(_ method: HTTPRequest.Method, _ uri: String, headers: HTTPFields = [:], body: String? = nil) async throws
        -> (status: HTTPResponse.Status, body: JSONValue)
    {
        let (status, _, text) = try await sendText(method, uri, headers: headers, body: body)
        let json = text.isEmpty ? JSONValue.null : try JSONDecoder().decode(JSONValue.self, from: Data(text.utf8))
        return (status, json)
    }
}
