import Hummingbird

/// CORS for an allow-list of origins (`CORS_ORIGINS`). A request from a listed origin gets
/// `Access-Control-Allow-Origin` set to that origin; preflights from it are answered 204;
/// other origins get no CORS headers (so browsers refuse them). `*` in the list allows any;
/// an entry with one `*` label (`https://*.mana.how`) allows any single-or-deeper subdomain
/// under that scheme and host, as the originals' production configuration uses.
///
/// Hummingbird's `CORSMiddleware` answers with one fixed origin or echoes every origin; it
/// cannot express such wildcard entries, hence this middleware.
package struct CORSAllowListMiddleware<Context: RequestContext>: RouterMiddleware {
    let origins: Set<String>
    let patterns: [OriginPattern]
    let allowsAny: Bool
    let allowHeaders = "Authorization, Content-Type, X-Client-Id, X-Request-Id, Idempotency-Key, X-App-Id"
    let allowMethods = "GET, POST, PUT, PATCH, DELETE, OPTIONS"

    package init(origins: [String]) {
        let listed = origins.map { $0.hasSuffix("/") ? String($0.dropLast()) : $0 }
        self.origins = Set(listed.filter { !$0.contains("*") })
        self.patterns = listed.compactMap(OriginPattern.init)
        self.allowsAny = listed.contains("*")
    }

    /// Whether `origin` may make CORS requests.
    func allows(_ origin: String) -> Bool {
        allowsAny || origins.contains(origin) || patterns.contains { $0.matches(origin) }
    }

    package func handle(
        _ request: Request, context: Context, next: (Request, Context) async throws -> Response
    ) async throws -> Response {
        guard let origin = request.headers[.origin], allows(origin) else {
            return try await next(request, context)
        }
        if request.method == .options, request.headers[.accessControlRequestMethod] != nil {
            var response = Response(status: .noContent)
            addHeaders(to: &response.headers, origin: origin)
            response.headers[.accessControlAllowMethods] = allowMethods
            response.headers[.accessControlAllowHeaders] = request.headers[.accessControlRequestHeaders] ?? allowHeaders
            response.headers[.accessControlMaxAge] = "600"
            return response
        }
        var response = try await next(request, context)
        addHeaders(to: &response.headers, origin: origin)
        response.headers[.accessControlExposeHeaders] = "X-Request-Id, Retry-After"
        return response
    }

    private func addHeaders(to headers: inout HTTPFields, origin: String) {
        headers[.accessControlAllowOrigin] = origin
        headers[.accessControlAllowCredentials] = "true"
        headers[values: .vary] = (headers[values: .vary] + ["Origin"])
    }
}

/// An allowed origin with one wildcard label: `https://*.mana.how` matches
/// `https://arcade.mana.how` (and `https://a.b.mana.how`), not `https://mana.how`,
/// `http://arcade.mana.how` nor `https://mana.how.evil.com`.
struct OriginPattern: Sendable {
    let scheme: String
    /// What the host must end with, starting at the dot: `.mana.how`.
    let suffix: String
    /// `:port` or empty.
    let port: String

    /// Nil for an entry that is not `scheme://*.host[:port]`.
    init?(_ entry: String) {
        guard let schemeEnd = entry.range(of: "://") else { return nil }
        let rest = entry[schemeEnd.upperBound...]
        guard rest.hasPrefix("*."), rest.count > 2, !rest.dropFirst().contains("*") else { return nil }
        scheme = String(entry[..<schemeEnd.lowerBound]).lowercased()
        let hostAndPort = rest.dropFirst(1)  // ".mana.how[:port]"
        if let colon = hostAndPort.lastIndex(of: ":") {
            suffix = hostAndPort[..<colon].lowercased()
            port = String(hostAndPort[colon...])
        } else {
            suffix = hostAndPort.lowercased()
            port = ""
        }
    }

    func matches(_ origin: String) -> Bool {
        guard let schemeEnd = origin.range(of: "://"), origin[..<schemeEnd.lowerBound].lowercased() == scheme else { return false }
        var host = origin[schemeEnd.upperBound...].lowercased()
        if !port.isEmpty {
            guard host.hasSuffix(port) else { return false }
            host.removeLast(port.count)
        } else if host.contains(":") {
            return false
        }
        guard host.hasSuffix(suffix), host.count > suffix.count else { return false }
        let label = host.dropLast(suffix.count)
        return label.allSatisfy { $0.isLetter || $0.isNumber || $0 == "-" || $0 == "." } && !label.hasPrefix(".") && !label.hasSuffix(".")
    }
}
