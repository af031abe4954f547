import Hummingbird

/// Bounds how long a request may take to produce its response (its head: a streamed body,
/// such as SSE, runs after this). A request past the deadline is cancelled and answered 503
/// with `Retry-After`, so no client waits on a stuck dependency (PostgreSQL restarting, a
/// pool with no connection to give) longer than the deadline.
///
/// ```swift
/// router.add(middleware: RequestDeadlineMiddleware(limit: .seconds(30), exempt: ["/api/v1/internal/sync/charge-recurring"]))
/// ```
package struct RequestDeadlineMiddleware<Context: RequestContext>: RouterMiddleware {
    let limit: Duration
    /// Paths of long jobs run on request (a cron's trigger) that are not bounded.
    let exempt: Set<String>

    package init(limit: Duration, exempt: Set<String> = []) {
        self.limit = limit
        self.exempt = exempt
    }

    package func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        if exempt.contains(request.uri.path) { return try await next(request, context) }
        return try await withoutActuallyEscaping(next) { next in
            let call = UnsafeTransfer((next, context))
            do {
                return try await withTimeout(limit) { try await call.value.0(request, call.value.1) }
            } catch is TimeoutError {
                throw APIError(
                    .serviceUnavailable, code: "timeout", message: "the request did not finish within \(limit.secondsText) s; try again",
                    headers: [.retryAfter: "1"])
            }
        }
    }
}

/// Carries a value the compiler cannot prove sendable into a child task that the caller
/// awaits before returning (the task group of `withTimeout`).
struct UnsafeTransfer<Value>: @unchecked Sendable {
    let value: Value
    init(_ value: Value) { self.value = value }
}

