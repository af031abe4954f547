import Hummingbird
import Prometheus

/// Counts requests and records their latency per route, method and status in the
/// service's Prometheus registry (`http_requests_total`, `http_request_duration_seconds`).
package struct PrometheusMetricsMiddleware<Context: RequestContext>: RouterMiddleware {
    let registry: PrometheusCollectorRegistry

    package init(registry: PrometheusCollectorRegistry) {
        self.registry = registry
    }

    package func handle(
        _ request: Request, context: Context, next: (Request, Context) async throws -> Response
    ) async throws -> Response {
        let start = ContinuousClock.now
        let response = try await next(request, context)
        let route = context.endpointPath ?? "NotFound"
        let method = request.method.rawValue
        let labels = [("method", method), ("route", route), ("status", String(response.status.code))]
        registry.makeCounter(name: "http_requests_total", labels: labels).increment()
        registry.makeDurationHistogram(
            name: "http_request_duration_seconds", labels: [("method", method), ("route", route)],
            buckets: ServiceMetrics.latencyBuckets
        ).record(ContinuousClock.now - start)
        return response
    }
}
