import Foundation
import HTTPKit
import Logging
import ServiceLifecycle

/// The in-process scheduler of the recurring charge: runs ``SubscriptionRepository/chargeDue``
/// once at start and then every `interval`; stops at once on graceful shutdown.
struct RecurringChargeService: Service {
    let subscriptions: SubscriptionRepository
    let interval: Duration
    let metrics: ServiceMetrics
    let logger: Logger

    func run() async throws {
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                let summary = await subscriptions.chargeDue()
                metrics.count("credits_sync_renewal_runs_total")
                if summary.total > 0 {
                    logger.info(
                        "recurring Cloud Sync charge",
                        metadata: ["charged": "\(summary.charged)", "paused": "\(summary.paused)", "errors": "\(summary.errors)"])
                }
                try? await Task.sleep(for: interval)
            }
        }
    }
}
