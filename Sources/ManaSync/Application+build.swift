import Foundation
import HTTPKit
import Hummingbird
import HummingbirdCore
import Logging
import NIOCore
import SharedAuth

/// mana-sync's migrations, shipped as resources of this module.
enum SyncMigrations {
    static func all() throws -> [Migration] { try Migration.load(bundle: .module, service: "mana-sync") }
}

/// Builds mana-sync: the chassis, its routes and background services.
func buildApplication(
    _ configuration: SyncConfiguration,
    metrics: ServiceMetrics = ServiceMetrics(),
    hub: RealtimeHub? = nil,
    logger: Logger? = nil,
    onServerRunning: @escaping @Sendable (any Channel) async -> Void = { _ in },
    registeredRoutes: (@Sendable ([(method: HTTPRequest.Method, path: String)]) -> Void)? = nil
) async throws -> some ApplicationProtocol {
    let hub =
        hub
        ?? RealtimeHub(
            metrics: metrics, queueLimit: configuration.realtime.queueLimit,
            connectionsPerUser: configuration.realtime.webSocketsPerUser, streamsPerUser: configuration.realtime.streamsPerUser)
    let compaction = CompactionStatus()
    var chassis = ServiceChassis<AppRequestContext>(
        settings: configuration.chassis, envelope: .errorMessage, bodyLimit: configuration.push.maximumBodyBytes,
        logger: logger, metrics: metrics,
        healthDetails: {
            let counts = hub.counts
            return [
                "connections": .number(Double(counts.connections)), "users": .number(Double(counts.users)),
                "compaction": compaction.healthDetails,
            ]
        })
    let auth = ServiceAuth(settings: configuration.auth, logger: chassis.logger)
    chassis.addService(auth.refreshService)
    let changeLog = ChangeLogRepository(
        client: chassis.database, logger: chassis.logger, lanes: configuration.push.lanes,
        batched: metrics.batchCounter("sync_push", items: "sync_pushes_batched_total"))
    let gate = BillingGate(
        settings: configuration.billing, serviceKey: configuration.auth.outgoingServiceKey, metrics: metrics, logger: chassis.logger)
    let memberships = MembershipDirectory(
        settings: configuration.memberships, serviceKey: configuration.auth.outgoingServiceKey, metrics: metrics, logger: chassis.logger)
    let notifier = PushNotifier(client: chassis.database, hub: hub, metrics: metrics, logger: chassis.logger)
    chassis.addService(notifier)
    SyncController(
        changeLog: changeLog, gate: gate, memberships: memberships, notifier: notifier, metrics: metrics,
        maximumChanges: configuration.push.maximumChanges, pages: configuration.pages,
        segments: LogSegments(settings: .init(budget: configuration.pages.cacheBytes)))
        .addRoutes(to: chassis.router.group("sync").add(middleware: auth.userMiddleware()).add(middleware: chassis.largeRequests))
    let fanOut = MemberFanOut(hub: hub, directory: memberships)
    StreamController(
        changeLog: changeLog, gate: gate, memberships: memberships, fanOut: fanOut, hub: hub, settings: configuration.realtime, metrics: metrics)
        .addRoutes(to: chassis.router.group("sync").add(middleware: auth.userMiddleware()))
    let database = chassis.database
    let log = chassis.logger
    MembershipController(
        directory: memberships,
        broadcast: { await ChangeFeed.announceMembershipInvalidation(userIDs: $0, client: database, logger: log) }
    ).addRoutes(to: chassis.router.group("internal/memberships").add(middleware: auth.serviceKeyMiddleware()))
    BillingController(gate: gate, broadcast: { await ChangeFeed.announceInvalidation(userID: $0, client: database, logger: log) })
        .addRoutes(to: chassis.router.group("internal/billing").add(middleware: auth.serviceKeyMiddleware()))
    chassis.addService(
        ChangeFeed(
            client: chassis.database, hub: hub, gate: gate, memberships: memberships, fanOut: fanOut, changeLog: changeLog, retry: configuration.realtime.listenerRetry,
            replica: notifier.replica, metrics: metrics, logger: chassis.logger))

    let folding = Compactor(client: chassis.database, logger: chassis.logger, metrics: metrics, status: compaction)
    if configuration.compaction.enabled {
        let after = configuration.compaction.after
        // Without a page cache in this process, nothing here needs young changes left unfolded.
        let floor = configuration.pages.cacheBytes > 0 ? Compactor.minimumAge : .zero
        chassis.addService(
            PeriodicService(every: configuration.compaction.interval) {
                do {
                    try await folding.run(horizon: Compactor.horizon(olderThan: after, floor: floor))
                } catch {
                    log.error("history compaction failed", metadata: ["error": "\(String(reflecting: error))"])
                }
            })
    }

    // A socket lives no longer than the token it was opened with.
    chassis.addService(PeriodicService(every: .seconds(1)) { hub.closeExpired() })
    // Listeners re-resolve their spaces at least as often as an answer stays fresh.
    chassis.addService(PeriodicService(every: configuration.memberships.freshTTL) { await fanOut.refreshAll() })
    let webSockets = WebSocketController(hub: hub, fanOut: fanOut, verifier: auth.verifier, settings: configuration.realtime, metrics: metrics)
    chassis.addService(WebSocketController.Drain(controller: webSockets))
    // Series the dashboards and alert rules read exist from the start (deploy/observability).
    for (name, labels) in SyncMetrics.declared + Compactor.declared + MembershipDirectory.declared { metrics.count(name, labels, by: 0) }
    metrics.declare("sync_space_fanout_users", buckets: RealtimeHub.fanOutBuckets)
    chassis.serveOpenAPI(openAPIURL)
    registeredRoutes?(chassis.router.registeredRoutes)
    let idleTimeout = configuration.chassis.idleTimeout
    let onEventLoop = configuration.chassis.connectionOnEventLoop
    return chassis.makeApplication(
        migrations: try SyncMigrations.all(),
        server: HTTPServerBuilder { responder in
            ConnectionOnItsEventLoop(
                inner: HeadDeadlineChannel(
                    inner: NoticeSocketChannel(responder: responder, http1: .init(idleTimeout: TimeAmount(idleTimeout)), sockets: webSockets),
                    limit: idleTimeout),
                enabled: onEventLoop)
        },
        onServerRunning: onServerRunning)
}

/// The OpenAPI document shipped with this service (served at `GET /openapi.json`).
let openAPIURL = Bundle.module.url(forResource: "openapi", withExtension: "json", subdirectory: "OpenAPI")

/// The counters mana-sync declares at zero when it starts, so that `rate()`, `increase()` and
/// the alerts on them see a series before the first event.
enum SyncMetrics {
    static let declared: [(String, [(String, String)])] = [
        ("sync_billing_decisions_total", [("decision", "allowed")]),
        ("sync_billing_decisions_total", [("decision", "denied")]),
        ("sync_billing_decisions_total", [("decision", "failed_open")]),
        ("sync_billing_status_calls_total", [("outcome", "ok")]),
        ("sync_billing_status_calls_total", [("outcome", "failed")]),
        ("sync_billing_invalidations_total", []),
        ("sync_billing_cache_total", [("result", "hit")]),
        ("sync_billing_cache_total", [("result", "miss")]),
        ("sync_listener_reconnects_total", []),
        ("sync_ws_dropped_slow_total", []),
        ("sync_ws_evicted_total", []),
        ("sync_ws_closed_total", [("reason", "too_many_connections")]),
        ("sync_ws_closed_total", [("reason", "token_expired")]),
        ("sync_sse_evicted_total", []),
        ("sync_sse_closed_total", [("reason", "token_expired")]),
        ("sync_notifications_sent_total", []),
        ("sync_notices_sent_total", []),
        ("sync_notices_dropped_total", []),
    ]
}
