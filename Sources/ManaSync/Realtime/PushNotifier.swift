import Foundation
import HTTPKit
import Logging
import NIOPosix
import PostgresNIO
import ServiceLifecycle
import Synchronization

/// Announces committed pushes: at once to this replica's clients (its hub), and to every
/// other replica over the `ChangeFeed` channel, after their commit and off the request path.
///
/// A NOTIFY inside the push's transaction made PostgreSQL serialise the commits of all pushes
/// (one database-wide lock held through each commit's WAL flush), halving the ceiling of
/// small pushes. Here a push hands its notice over once its transaction committed, and one
/// statement sends every notice queued meanwhile: under load, many pushes per NOTIFY.
///
/// Only committed pushes are announced, as before. What changes: a replica that dies between
/// a push's commit and the NOTIFY (milliseconds) loses that notice; the other replicas'
/// clients then see the push on their next pull, not at once (docs/sync.md, "Real time").
///
/// The sender's own clients no longer wait for its notice to come back over the channel:
/// the notice carries the replica's tag (``replica``), and its own listener leaves it unread
/// (``ChangeFeed``). Hearing one's own notices back cost a fifth of the service's CPU per
/// one-change push (docs/benchmarks.md, session 43).
final class PushNotifier: Service, Sendable {
    private let client: PostgresClient
    private let hub: RealtimeHub
    private let metrics: ServiceMetrics
    private let logger: Logger
    private let signal = WakeSignal()
    private let queue = Mutex<(notices: [String], stopping: Bool)>(([], false))
    /// Most notices waiting; beyond, new ones are dropped (counted): clients still pull.
    static let capacity = 100_000
    /// Most notices per statement.
    static let batch = 1_000

    /// This replica's tag on its notices: random, one per running application.
    let replica: String

    init(client: PostgresClient, hub: RealtimeHub, metrics: ServiceMetrics, logger: Logger) {
        self.client = client
        self.hub = hub
        self.replica = String((0..<12).map { _ in "0123456789abcdefghijklmnopqrstuvwxyz".randomElement()! })
        self.metrics = metrics
        self.logger = logger
    }

    /// Queues the notice of a committed push.
    func announce(userID: String, appID: String, clientID: String, tables: [String], spaces: [String]) {
        hub.publish(PushNotice(userID: userID, appID: appID, tables: tables, clientID: clientID, spaces: spaces))
        let payload = ChangeFeed.pushPayload(
            replica: replica, userID: userID, appID: appID, clientID: clientID, tables: tables, spaces: spaces)
        let queued = queue.withLock { queue in
            guard queue.notices.count < Self.capacity else { return false }
            queue.notices.append(payload)
            return true
        }
        if queued {
            signal.wake()
        } else {
            metrics.count("sync_notices_dropped_total")
        }
    }

    func run() async throws {
        // On an event loop: the notifier wakes and sends many times a second under load.
        await EventLoopTaskExecutor.run(on: MultiThreadedEventLoopGroup.singleton.next()) { await loop() }
    }

    private func loop() async {
        await withGracefulShutdownHandler {
            while true {
                let (notices, stopping) = queue.withLock { queue in
                    defer { queue.notices = [] }
                    return (queue.notices, queue.stopping)
                }
                for start in stride(from: 0, to: notices.count, by: Self.batch) {
                    await send(Array(notices[start..<min(start + Self.batch, notices.count)]))
                }
                if stopping { return }
                if notices.isEmpty { await signal.wait() }
            }
        } onGracefulShutdown: {
            // Send what is queued, then stop.
            self.queue.withLock { $0.stopping = true }
            self.signal.wake()
        }
    }

    private func send(_ notices: [String]) async {
        do {
            try await client.withGuardedConnection { connection in
                for try await _ in try await connection.execute(NotifyStatement(notices: notices), logger: self.logger) {}
            }
            metrics.count("sync_notices_sent_total", by: notices.count)
        } catch {
            metrics.count("sync_notices_dropped_total", by: notices.count)
            logger.warning("could not announce pushes to the replicas", metadata: ["error": "\(error)", "notices": "\(notices.count)"])
        }
    }

    /// One NOTIFY per notice on the channel, prepared once per connection (PostgreSQL parsed
    /// and planned the statement for every send before).
    struct NotifyStatement: PostgresPreparedStatement {
        static let sql = "SELECT count(*)::int FROM (SELECT pg_notify($1, n) FROM unnest($2::text[]) AS n) AS sent"
        typealias Row = Int

        let notices: [String]

        func makeBindings() throws -> PostgresBindings {
            var bindings = PostgresBindings(capacity: 2)
            bindings.append(ChangeFeed.channel)
            bindings.append(notices)
            return bindings
        }

        func decodeRow(_ row: PostgresRow) throws -> Int {
            try row.decode(Int.self)
        }
    }
}
