import Prometheus
import Synchronization

/// The Prometheus registry of one running service, served at `GET /metrics`.
///
/// Each application owns one, so tests can build many applications in one process;
/// `serve` also installs it as the process-wide swift-metrics backend.
package struct ServiceMetrics: Sendable {
    package let registry: PrometheusCollectorRegistry
    /// The metrics made so far, by name and labels: the registry's `make…` validates the name,
    /// builds its descriptor and looks it up under a lock on every call, about 2 % of the
    /// service's CPU per request when each count asked it (docs/benchmarks.md, session 43).
    private let made = Made()

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
        counter(name, labels).increment(by: Int64(amount))
    }

    private func counter(_ name: String, _ labels: [(String, String)]) -> Counter {
        made.metric(Key(name: name, labels: labels), in: made.counters) {
            registry.makeCounter(descriptor: MetricNameDescriptor(metricName: name, unitName: "", helpText: ""), labels: labels)
        }
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
        made.metric(Key(name: name, labels: labels), in: made.gauges) {
            registry.makeGauge(descriptor: MetricNameDescriptor(metricName: name, unitName: "", helpText: ""), labels: labels)
        }.set(value)
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
        counter(name, []).increment(by: delta)
    }

    private static let totals = Mutex<[String: Double]>([:])

    /// Records a duration in a histogram with the standard latency buckets.
    package func record(_ name: String, _ labels: [(String, String)] = [], duration: Duration) {
        made.metric(Key(name: name, labels: labels), in: made.durations) {
            registry.makeDurationHistogram(
                descriptor: MetricNameDescriptor(metricName: name, unitName: "", helpText: ""), labels: labels, buckets: Self.latencyBuckets)
        }.record(duration)
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
        made.metric(Key(name: name, labels: labels), in: made.values) {
            registry.makeValueHistogram(descriptor: MetricNameDescriptor(metricName: name, unitName: "", helpText: ""), labels: labels, buckets: buckets)
        }
    }

    /// The Prometheus text exposition of every metric.
    package func exposition() -> String {
        registry.emitToString()
    }
}

extension ServiceMetrics {
    /// A metric's name and labels, in the order given.
    fileprivate struct Key: Hashable, Sendable {
        let name: String
        let labels: [(String, String)]

        static func == (a: Key, b: Key) -> Bool {
            a.name == b.name && a.labels.count == b.labels.count && zip(a.labels, b.labels).allSatisfy { $0 == $1 }
        }

        func hash(into hasher: inout Hasher) {
            hasher.combine(name)
            for (label, value) in labels {
                hasher.combine(label)
                hasher.combine(value)
            }
        }
    }

    /// The metrics a ``ServiceMetrics`` made, one table per kind. A value histogram's buckets
    /// are fixed by its first call, as the registry fixes them.
    fileprivate final class Made: Sendable {
        let counters = Mutex<[Key: Counter]>([:])
        let gauges = Mutex<[Key: Gauge]>([:])
        let durations = Mutex<[Key: DurationHistogram]>([:])
        let values = Mutex<[Key: ValueHistogram]>([:])

        /// The metric under `key` in `table`, made by `make` the first time (outside the lock:
        /// the registry has its own, and answers the same metric to a second maker).
        func metric<M: AnyObject & Sendable>(_ key: Key, in table: borrowing Mutex<[Key: M]>, make: () -> M) -> M {
            if let metric = table.withLock({ $0[key] }) { return metric }
            let metric = make()
            return table.withLock { table in
                if let first = table[key] { return first }
                table[key] = metric
                return metric
            }
        }
    }
}
