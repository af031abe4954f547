import Hummingbird

/// Serves at most `concurrency` requests with a large body (over
/// ``ChassisSettings/largeRequestBytes`` by `Content-Length`) at a time; the others wait their
/// turn, within the request deadline. The chassis makes one per service
/// (``ServiceChassis/largeRequests``); a service adds it to the route groups that take large
/// bodies, after their authentication middleware, so only authenticated requests to those
/// routes take turns (mana-sync: `/sync`; mana-credits refuses bodies over 1 MiB anyway).
///
/// A push of 4,000 changes (4.5 MB) costs mana-sync about 40 MB while it is decoded, checked,
/// stored and answered; twenty at once took its peak RSS to 338 MB. Two at a time kept the
/// peak at 114–124 MB and made the burst faster (docs/benchmarks.md): on a small machine the
/// CPU and the database serialise such requests anyway. Small requests
/// never wait. A chunked body without `Content-Length` is not counted.
package struct LargeRequestLimiter<Context: RequestContext>: RouterMiddleware {
    let slots: AsyncSemaphore

    package init(concurrency: Int) {
        slots = AsyncSemaphore(permits: concurrency)
    }

    package func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        guard let length = request.headers[.contentLength].flatMap(Int.init), length > ChassisSettings.largeRequestBytes else {
            return try await next(request, context)
        }
        return try await slots.withPermit { try await next(request, context) }
    }
}
