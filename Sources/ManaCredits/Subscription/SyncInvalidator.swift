import Foundation
import HTTPKit
import Logging

/// Tells mana-sync that a user's subscription changed
/// (`POST {MANA_SYNC_URL}/internal/billing/invalidate/{userId}`), so its billing cache drops
/// the user at once. Best effort: in the background, with a short timeout, never failing
/// the change that caused it; mana-sync's short cache TTL covers a lost call.
struct SyncInvalidator: Sendable {
    let sync: ServiceClient
    let metrics: ServiceMetrics
    let logger: Logger

    init(syncURL: String, serviceKey: String, metrics: ServiceMetrics, logger: Logger) {
        self.sync = ServiceClient(baseURL: syncURL, serviceKey: serviceKey, timeout: .seconds(1))
        self.metrics = metrics
        self.logger = logger
    }

    func invalidate(userID: String) {
        let path = "/internal/billing/invalidate/" + (userID.addingPercentEncoding(withAllowedCharacters: .pathSegment) ?? userID)
        Task {
            do {
                let response = try await sync.send(method: .POST, path: path, body: nil)
                guard (200..<300).contains(response.status) else { throw ServiceClientError.status(response.status, response.body) }
                metrics.count("credits_sync_invalidations_total", [("outcome", "ok")])
            } catch {
                metrics.count("credits_sync_invalidations_total", [("outcome", "failed")])
                logger.notice("could not tell mana-sync about a subscription change", metadata: ["user_id": "\(userID)", "error": "\(error)"])
            }
        }
    }
}
