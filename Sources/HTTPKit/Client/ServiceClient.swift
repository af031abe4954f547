import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1

/// A small client for calls to our own services and to third parties speaking JSON:
/// a base URL, a timeout, `X-Service-Key`, JSON in and out.
///
/// ```swift
/// let credits = ServiceClient(baseURL: "http://localhost:3061", serviceKey: key, timeout: .seconds(2))
/// let status: SyncStatus = try await credits.get("/api/v1/internal/sync/status/\(userID)")
/// ```
package struct ServiceClient: Sendable {
    package let baseURL: String
    let serviceKey: String?
    let timeout: Duration
    let httpClient: HTTPClient
    let extraHeaders: [(String, String)]

    package init(
        baseURL: String, serviceKey: String?, timeout: Duration, httpClient: HTTPClient = ServiceClient.sharedHTTPClient,
        headers: [(String, String)] = []
    ) {
        self.baseURL = baseURL.hasSuffix("/") ? String(baseURL.dropLast()) : baseURL
        self.serviceKey = serviceKey
        self.timeout = timeout
        self.httpClient = httpClient
        self.extraHeaders = headers
    }

    /// The process-wide client for calls to other services. Unlike `HTTPClient.shared` it does
    /// not retry a refused connection until the deadline: a service that is down is reported
    /// at once, so callers that fail open (the billing gate) lose no time on it.
    package static let sharedHTTPClient: HTTPClient = {
        var configuration = HTTPClient.Configuration()
        // Idle connections are dropped before the other service's HTTP_IDLE_TIMEOUT (30 s by
        // default) closes them, so a call never goes out on a connection the server is closing.
        configuration.connectionPool = .init(idleTimeout: .seconds(20), concurrentHTTP1ConnectionsPerHostSoftLimit: 32)
        configuration.connectionPool.retryConnectionEstablishment = false
        return HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup, configuration: configuration)
    }()

    /// GETs `path` and decodes a 2xx JSON answer.
    package func get<Output: Decodable>(_ path: String, as type: Output.Type = Output.self) async throws -> Output {
        let response = try await send(method: .GET, path: path, body: nil)
        return try decode(response)
    }

    /// POSTs `body` as JSON and decodes a 2xx JSON answer.
    package func post<Output: Decodable>(_ path: String, json body: some Encodable, as type: Output.Type = Output.self)
        async throws -> Output
    {
        let response = try await send(method: .POST, path: path, body: try JSONEncoder().encode(body))
        return try decode(response)
    }

    /// Sends a request and returns the status and body whatever the status.
    package func send(
        method: HTTPMethod, path: String, body: Data?, contentType: String = "application/json",
        headers: [(String, String)] = []
    ) async throws -> ServiceResponse {
        var request = HTTPClientRequest(url: baseURL + path)
        request.method = method
        if let serviceKey { request.headers.add(name: "X-Service-Key", value: serviceKey) }
        for (name, value) in extraHeaders + headers { request.headers.add(name: name, value: value) }
        request.headers.add(name: "Accept", value: "application/json")
        if let body {
            request.headers.add(name: "Content-Type", value: contentType)
            request.body = .bytes(ByteBuffer(bytes: body))
        }
        let deadline = TimeAmount(timeout)
        do {
            let response = try await httpClient.execute(request, timeout: deadline)
            let bytes = try await response.body.collect(upTo: 4 << 20)
            return ServiceResponse(status: Int(response.status.code), body: Data(buffer: bytes))
        } catch let error as HTTPClientError where error == .deadlineExceeded || error == .readTimeout || error == .connectTimeout {
            throw ServiceClientError.timeout
        } catch let error as ServiceClientError {
            throw error
        } catch {
            throw ServiceClientError.unreachable("\(error)")
        }
    }

    private func decode<Output: Decodable>(_ response: ServiceResponse) throws -> Output {
        guard (200..<300).contains(response.status) else { throw ServiceClientError.status(response.status, response.body) }
        do {
            return try JSONDecoder().decode(Output.self, from: response.body)
        } catch {
            throw ServiceClientError.unreadableBody("\(error)")
        }
    }
}

/// A status and body from another service.
package struct ServiceResponse: Sendable {
    package let status: Int
    package let body: Data
}

/// Why a call to another service did not give a usable answer.
package enum ServiceClientError: Error, CustomStringConvertible {
    case timeout
    case unreachable(String)
    case status(Int, Data)
    case unreadableBody(String)

    package var description: String {
        switch self {
        case .timeout: "timed out"
        case .unreachable(let reason): "unreachable: \(reason)"
        case .status(let code, _): "answered \(code)"
        case .unreadableBody(let reason): "unreadable answer: \(reason)"
        }
    }
}

extension CharacterSet {
    /// Characters allowed unescaped in one path segment (user ids in internal paths).
    package static let pathSegment: CharacterSet = {
        var set = CharacterSet.urlPathAllowed
        set.remove(charactersIn: "/")
        return set
    }()
}
