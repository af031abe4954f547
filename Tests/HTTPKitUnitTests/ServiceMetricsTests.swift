import HTTPKit
import Testing

/// Each metric is made once per name and labels and then reused (``ServiceMetrics``): the
/// figures add up per label set, exactly as when every call asked the registry.
@Suite struct ServiceMetricsTests {
    @Test func countsGaugesAndHistogramsAddUpPerNameAndLabels() {
        let metrics = ServiceMetrics()
        metrics.count("jobs_total", [("kind", "a")])
        metrics.count("jobs_total", [("kind", "a")], by: 2)
        metrics.count("jobs_total", [("kind", "b")])
        metrics.count("plain_total")
        metrics.count("plain_total")
        metrics.set("depth", to: 4)
        metrics.set("depth", to: 7)
        metrics.record("latency_seconds", [("route", "/x")], duration: .milliseconds(3))
        metrics.record("latency_seconds", [("route", "/x")], duration: .milliseconds(30))
        metrics.observe("sizes", value: 5, buckets: [1, 10])
        metrics.observe("sizes", value: 50, buckets: [1, 10])
        let text = metrics.exposition()
        for line in [
            #"jobs_total{kind="a"} 3"#, #"jobs_total{kind="b"} 1"#, "plain_total 2", "depth 7.0", #"latency_seconds_count{route="/x"} 2"#,
            "sizes_count 2", #"sizes_bucket{le="10.0"} 1"#,
        ] {
            #expect(text.split(separator: "\n").contains { $0 == line }, "\(line) in \(text)")
        }
        // Two registries never share a metric.
        let other = ServiceMetrics()
        other.count("plain_total")
        #expect(other.exposition().contains("plain_total 1"))
        #expect(metrics.exposition().contains("plain_total 2"))
    }

    /// Label sets that differ in one value are counted apart.
    @Test func labelSetsThatDifferInAValueAreCountedApart() {
        let metrics = ServiceMetrics()
        metrics.count("pairs_total", [("a", "1"), ("b", "2")])
        metrics.count("pairs_total", [("a", "1"), ("b", "2")])
        metrics.count("pairs_total", [("a", "1"), ("b", "3")])
        let text = metrics.exposition()
        #expect(text.contains(#"pairs_total{a="1",b="2"} 2"#), "\(text)")
        #expect(text.contains(#"pairs_total{a="1",b="3"} 1"#), "\(text)")
    }
}
