import Foundation
import HTTPKit
import Logging

/// The in-process scheduler of the recurring charge: ``SubscriptionRepository/chargeDue``
/// once at start and then every `interval`; stops at once on graceful shutdown.
enum RecurringCharge {
    static func service(_ subscriptions: SubscriptionRepository, every interval: Duration, metrics: ServiceMetrics, logger: Logger)
        -> PeriodicService
    {
        PeriodicService(every: interval) {
            // Counted by chargeDue (credits_sync_renewal_runs_total), as for the HTTP trigger.
            let summary = await subscriptions.chargeDue()
            if summary.total > 0 {
                logger.info(
                    "recurring Cloud Sync charge",
                    metadata: ["charged": "\(summary.charged)", "paused": "\(summary.paused)", "errors": "\(summary.errors)"])
            }
        }
    }
}
