import Foundation
import HTTPKit
import Hummingbird
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
    hooks: SyncHooks = SyncHooks(),
    logger: Logger? = nil,
    onServerRunning: @escaping @Sendable (any Channel) async -> Void = { _ in }
) async throws -> some ApplicationProtocol {
    var chassis = ServiceChassis<AppRequestContext>(
        settings: configuration.chassis, envelope: .errorMessage, bodyLimit: 10 * 1024 * 1024,
        logger: logger, metrics: metrics)
    let auth = ServiceAuth(settings: configuration.auth, logger: chassis.logger)
    chassis.addService(auth.refreshService)
    let changeLog = ChangeLogRepository(client: chassis.database, logger: chassis.logger)
    let gate = BillingGate(
        settings: configuration.billing, serviceKey: configuration.auth.serviceKeys[0], metrics: metrics, logger: chassis.logger)
    SyncController(changeLog: changeLog, body: chassis.body, gate: gate, hooks: hooks, metrics: metrics)
        .addRoutes(to: chassis.router.group("sync").add(middleware: auth.userMiddleware()))
    BillingController(gate: gate)
        .addRoutes(to: chassis.router.group("internal/billing").add(middleware: auth.serviceKeyMiddleware()))
    return chassis.makeApplication(migrations: try SyncMigrations.all(), onServerRunning: onServerRunning)
}
