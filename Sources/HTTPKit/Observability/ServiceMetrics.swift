import Prometheus
import Synchronization

/// The Prometheus registry of one running service, served at `GET /metrics`.
///
/// Each application owns one, so tests can build many applications in one process;
/// `serve` also installs it as the process-wide swift-metrics backend.
package struct ServiceMetrics: Sendable {
    package let registry: PrometheusCollectorRegistry

    /// Latency buckets from 1 ms to 10 s.
    package static let latencyBuckets: [Duration] = [
        .milliseconds(1), .milliseconds(2), .milliseconds(5), .milliseconds(10), .milliseconds(25),
        .milliseconds(50), .milliseconds(100), .milliseconds(250), .milliseconds(500),
        .seconds(1), .milliseconds(2500), .seconds(5), .seconds(10),
    ]

    package init(registry: PrometheusCollectorRegistry = PrometheusCollectorRegistry()) {
        self.registry = registry
    }

    /// Adds `by` to a counter.
    package func count(_ name: String, _ labels: [(String, String)] = [], by amount: Int = 1) {
        registry.makeCounter(descriptor: MetricNameDescriptor(metricName: name, unitName: "", helpText: ""), labels: labels).increment(by: Int64(amount))
    }

    /// Counts the batches a ``StatementBatches`` sent: `<prefix>_batches_total` and
    /// `<items>` (what went in them) for the batches PostgreSQL took,
    /// `<prefix>_batches_refused_total` for those it rolled back.
    package func batchCounter(_ prefix: String, items: String) -> @Sendable (_ size: Int, _ refused: Bool) -> Void {
        { size, refused in
            if refused {
                count("\(prefix)_batches_refused_total")
            } else {
                count("\(prefix)_batches_total")
                count(items, by: size)
            }
        }
    }

    /// Sets a gauge.
    package func set(_ name: String, _ labels: [(String, String)] = [], to value: Double) {
        registry.makeGauge(descriptor: MetricNameDescriptor(metricName: name, unitName: "", helpText: ""), labels: labels).set(value)
    }

    /// Raises a counter to `total`, a running total read from elsewhere (CPU seconds from
    /// `/proc`): adds what it grew since the last call for this registry and name.
    package func advance(_ name: String, to total: Double) {
        let key = "\(ObjectIdentifier(registry).hashValue)/\(name)"
        let delta = Self.totals.withLock { totals -> Double in
            let grown = max(0, total - (totals[key] ?? 0))
            totals[key] = max(total, totals[key] ?? 0)
            return grown
        }
        registry.makeCounter(descriptor: MetricNameDescriptor(metricName: name, unitName: "", helpText: ""), labels: [])
            .increment(by: delta)
    }

    private static let totals = Mutex<[String: Double]>([:])

    /// Records a duration in a histogram with the standard latency buckets.
    package func record(_ name: String, _ labels: [(String, String)] = [], duration: Duration) {
        registry.makeDurationHistogram(descriptor: MetricNameDescriptor(metricName: name, unitName: "", helpText: ""), labels: labels, buckets: Self.latencyBuckets).record(duration)
    }

    /// Declares a value histogram (all buckets at zero) before its first value.
    package func declare(_ name: String, buckets: [Double]) {
        _ = valueHistogram(name, [], buckets: buckets)
    }

    /// Records a value in a histogram with `buckets`.
    package func observe(_ name: String, _ labels: [(String, String)] = [], value: Double, buckets: [Double]) {
        valueHistogram(name, labels, buckets: buckets).record(value)
    }

    private func valueHistogram(_ name: String, _ labels: [(String, String)], buckets: [Double]) -> ValueHistogram {
        registry.makeValueHistogram(descriptor: MetricNameDescriptor(metricName: name, unitName: "", helpText: ""), labels: labels, buckets: buckets)
    }

    /// The Prometheus text exposition of every metric.
    package func exposition() -> String {
        registry.emitToString()
    }
}
