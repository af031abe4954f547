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
    onServerRunning: @escaping @Sendable (any Channel) async -> Void = { _ in }
) async throws -> some ApplicationProtocol {
    var chassis = ServiceChassis<AppRequestContext>(
        settings: configuration.chassis, envelope: .statusCodeMessage, bodyLimit: 1024 * 1024,
        logger: logger, metrics: metrics)
    let auth = ServiceAuth(settings: configuration.auth, logger: chassis.logger)
    chassis.addService(auth.refreshService)
    let ledger = LedgerRepository(client: chassis.database, logger: chassis.logger)
    let packages = PackageRepository(client: chassis.database, logger: chassis.logger)
    LedgerController(ledger: ledger, packages: packages, body: chassis.body)
        .addRoutes(to: chassis.router.group("api/v1/credits").add(middleware: auth.userMiddleware()))
    InternalLedgerController(ledger: ledger, body: chassis.body)
        .addRoutes(to: chassis.router.group("api/v1/internal/credits").add(middleware: auth.serviceKeyMiddleware()))
    return chassis.makeApplication(migrations: try CreditsMigrations.all(), onServerRunning: onServerRunning)
}
