import Hummingbird

/// CORS for an allow-list of origins (`CORS_ORIGINS`). A request from a listed origin gets
/// `Access-Control-Allow-Origin` set to that origin; preflights from it are answered 204;
/// other origins get no CORS headers (so browsers refuse them). `*` in the list allows any.
package struct CORSAllowListMiddleware<Context: RequestContext>: RouterMiddleware {
    let origins: Set<String>
    let allowsAny: Bool
    let allowHeaders = "Authorization, Content-Type, X-Client-Id, X-Request-Id, Idempotency-Key, X-App-Id"
    let allowMethods = "GET, POST, PUT, PATCH, DELETE, OPTIONS"

    package init(origins: [String]) {
        self.origins = Set(origins.map { $0.hasSuffix("/") ? String($0.dropLast()) : $0 })
        self.allowsAny = self.origins.contains("*")
    }

    package func handle(
        _ request: Request, context: Context, next: (Request, Context) async throws -> Response
    ) async throws -> Response {
        guard let origin = request.headers[.origin], allowsAny || origins.contains(origin) else {
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
