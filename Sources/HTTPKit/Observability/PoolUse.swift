import Metrics
import NIOConcurrencyHelpers

/// Pool use as the process's metrics backend sees it (the service's registry under `serve`):
/// leases held by guarded work (requests and background jobs; the mana-sync listener's own
/// connection is not among them) and leases waiting for a connection. The pool's size is
/// `db_pool_connections_max`, set by ``ServiceChassis``. And the connections retired after
/// a large message (``PostgresClient/withGuardedConnection(retire:_:)``).
enum PoolUse {
    static let inUse = Meter(label: "db_pool_connections_in_use")
    static let waiting = Meter(label: "db_pool_lease_waiting")
    /// Connections closed after use to give back a large message buffer.
    static let retired = Counter(label: "db_pool_connections_retired_total")

    /// One lease's wait: counted from creation until the first ``end()``.
    final class Wait: Sendable {
        private let ended = NIOLockedValueBox(false)

        init() { PoolUse.waiting.increment() }

        func end() {
            let first = ended.withLockedValue { ended in
                defer { ended = true }
                return !ended
            }
            if first { PoolUse.waiting.decrement() }
        }
    }
}
