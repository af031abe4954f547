import Hummingbird

/// Counts requests and records their latency per route, method and status in the
/// service's Prometheus registry (`http_requests_total`, `http_request_duration_seconds`).
///
/// Not Hummingbird's `MetricsMiddleware`: that one reports through the process-global
/// swift-metrics backend under its own names (`hb.requests`, `http.server.request.duration`,
/// `hb.request.errors`). Our dashboards and alert rules (deploy/) query the names above, and
/// each service keeps its own registry, so two services in one process (the tests) never
/// mix their figures.
package struct PrometheusMetricsMiddleware<Context: RequestContext>: RouterMiddleware {
    let metrics: ServiceMetrics

    package init(metrics: ServiceMetrics) {
        self.metrics = metrics
    }

    package func handle(
        _ request: Request, context: Context, next: (Request, Context) async throws -> Response
    ) async throws -> Response {
        let start = ContinuousClock.now
        let response = try await next(request, context)
        let route = context.endpointPath ?? "NotFound"
        let method = request.method.rawValue
        metrics.count("http_requests_total", [("method", method), ("route", route), ("status", String(response.status.code))])
        metrics.record("http_request_duration_seconds", [("method", method), ("route", route)], duration: ContinuousClock.now - start)
        return response
    }
}
