import Foundation
import HTTPKit
import Hummingbird
import Logging
import NIOCore
import SharedAuth

/// mana-credits's migrations, shipped as resources of this module.
enum CreditsMigrations {
    static func all() throws -> [Migration] { try Migration.load(bundle: .module, service: "mana-credits") }
}

/// Builds mana-credits: the chassis, its routes and background services.
func buildApplication(
    _ configuration: CreditsConfiguration,
    metrics: ServiceMetrics = ServiceMetrics(),
    logger: Logger? = nil,
    onServerRunning: @escaping @Sendable (any Channel) async -> Void = { _ in },
    registeredRoutes: (@Sendable ([(method: HTTPRequest.Method, path: String)]) -> Void)? = nil
) async throws -> some ApplicationProtocol {
    var chassis = ServiceChassis<AppRequestContext>(
        settings: configuration.chassis, envelope: .statusCodeMessage, bodyLimit: 1024 * 1024,
        // The cron's trigger runs as long as the due subscriptions take; it is resumable.
        exemptFromDeadline: ["/api/v1/internal/sync/charge-recurring"], logger: logger, metrics: metrics)
    let auth = ServiceAuth(settings: configuration.auth, logger: chassis.logger, wording: .credits)
    chassis.addService(auth.refreshService)
    let ledger = LedgerRepository(
        client: chassis.database, logger: chassis.logger, lanes: configuration.ledger.debitLanes,
        batched: metrics.batchCounter("credits_debit", items: "credits_debits_batched_total"))
    let packages = PackageRepository(client: chassis.database, logger: chassis.logger)
    LedgerController(ledger: ledger, packages: packages)
        .addRoutes(to: chassis.router.group("api/v1/credits").add(middleware: auth.userMiddleware()))
    InternalLedgerController(ledger: ledger, settings: configuration.ledger)
        .addRoutes(to: chassis.router.group("api/v1/internal/credits").add(middleware: auth.serviceKeyMiddleware()))
    let reservations = Reservations(client: chassis.database, logger: chassis.logger)
    ReservationController(reservations: reservations)
        .addRoutes(to: chassis.router.group("api/v1/internal/credits").add(middleware: auth.serviceKeyMiddleware()))
    if let interval = configuration.ledger.reservationSweepInterval {
        chassis.addService(ReservationSweeper.service(reservations, every: interval, metrics: metrics, logger: chassis.logger))
    }
    let settings = configuration.subscriptions
    let serviceKey = configuration.auth.outgoingServiceKey
    let outboxSignal = WakeSignal()
    let subscriptions = SubscriptionRepository(
        client: chassis.database,
        notifier: SyncInvalidator(syncURL: settings.syncURL, timeout: settings.syncTimeout, serviceKey: serviceKey, metrics: metrics, logger: chassis.logger),
        outbox: outboxSignal, resumeURL: settings.resumeURL, logger: chassis.logger, chargeConcurrency: settings.chargeConcurrency,
        maxRenewalFailures: settings.renewalMaxFailures, renewalRetryBase: settings.renewalRetryBase, metrics: metrics)
    let subscriptionRoutes = SubscriptionController(subscriptions: subscriptions, metrics: metrics)
    subscriptionRoutes.addUserRoutes(to: chassis.router.group("api/v1/sync").add(middleware: auth.userMiddleware()))
    subscriptionRoutes.addAdminRoutes(to: chassis.router.group("api/v1/admin/sync").add(middleware: auth.userMiddleware()))
    subscriptionRoutes.addInternalRoutes(to: chassis.router.group("api/v1/internal/sync").add(middleware: auth.serviceKeyMiddleware()))
    chassis.addService(
        OutboxSender(
            client: chassis.database,
            settings: .init(
                notifyURL: settings.notifyURL, pollInterval: settings.outboxPollInterval, retryBase: settings.outboxRetryBase,
                retryMax: settings.outboxRetryMax),
            serviceKey: serviceKey, signal: outboxSignal, metrics: metrics, logger: chassis.logger))
    if let interval = settings.chargeInterval {
        chassis.addService(RecurringCharge.service(subscriptions, every: interval, metrics: metrics, logger: chassis.logger))
    }
    let purchaseRoutes = PurchaseController(
        purchases: Purchases(client: chassis.database, settings: configuration.stripe, packages: packages, logger: chassis.logger),
        settings: configuration.stripe, metrics: metrics)
    purchaseRoutes.addUserRoutes(to: chassis.router.group("api/v1/credits").add(middleware: auth.userMiddleware()))
    purchaseRoutes.addWebhookRoutes(to: chassis.router.group("api/v1/webhooks"))
    let gifts = GiftRepository(client: chassis.database, baseURL: configuration.gifts.baseURL, logger: chassis.logger)
    let giftRoutes = GiftController(gifts: gifts, settings: configuration.gifts)
    giftRoutes.addPublicRoutes(to: chassis.router.group("api/v1/gifts"))
    giftRoutes.addUserRoutes(to: chassis.router.group("api/v1/gifts").add(middleware: auth.userMiddleware()))
    giftRoutes.addInternalRoutes(to: chassis.router.group("api/v1/internal/gifts").add(middleware: auth.serviceKeyMiddleware()))
    if let interval = configuration.gifts.expiryInterval {
        chassis.addService(GiftExpiry.service(gifts, every: interval, logger: chassis.logger))
    }
    if let interval = configuration.audit.interval {
        chassis.addService(
            LedgerAuditSchedule(
                audit: LedgerAudit(client: chassis.database, logger: chassis.logger), interval: interval, metrics: metrics,
                logger: chassis.logger))
    }
    // Series the alert rules read exist from the start (deploy/observability/prometheus/rules).
    for (name, labels) in CreditsMetrics.declared { metrics.count(name, labels, by: 0) }
    chassis.serveOpenAPI(openAPIURL)
    registeredRoutes?(chassis.router.registeredRoutes)
    return chassis.makeApplication(migrations: try CreditsMigrations.all(), onServerRunning: onServerRunning)
}

/// The OpenAPI document shipped with this service (served at `GET /openapi.json`).
let openAPIURL = Bundle.module.url(forResource: "openapi", withExtension: "json", subdirectory: "OpenAPI")

/// The counters mana-credits declares at zero when it starts, so that `rate()`, `increase()`
/// and the alerts on them see a series before the first event.
enum CreditsMetrics {
    static let declared: [(String, [(String, String)])] = [
        ("credits_outbox_attempts_total", [("outcome", "delivered")]),
        ("credits_outbox_attempts_total", [("outcome", "failed")]),
        ("credits_sync_renewal_runs_total", []),
        ("credits_sync_renewals_total", [("outcome", "charged")]),
        ("credits_sync_renewals_total", [("outcome", "paused")]),
        ("credits_sync_renewals_total", [("outcome", "failed")]),
        ("credits_sync_renewal_failures_total", []),
        ("credits_sync_renewal_failure_pauses_total", []),
        ("credits_sync_invalidations_total", [("outcome", "ok")]),
        ("credits_sync_invalidations_total", [("outcome", "failed")]),
        ("credits_ledger_audit_runs_total", [("outcome", "clean")]),
        ("credits_ledger_audit_runs_total", [("outcome", "violations")]),
        ("credits_ledger_audit_runs_total", [("outcome", "error")]),
        ("credits_reservations_expired_total", []),
        ("credits_stripe_webhooks_total", [("outcome", "applied")]),
        ("credits_stripe_webhooks_total", [("outcome", "duplicate")]),
        ("credits_stripe_webhooks_total", [("outcome", "bad_signature")]),
    ]
}
