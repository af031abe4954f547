import Foundation
import HTTPKit
import Logging

/// Tells mana-sync that a user's subscription changed
/// (`POST {MANA_SYNC_URL}/internal/billing/invalidate/{userId}`), so its billing cache drops
/// the user at once. Awaited after the change commits and before the user hears back, so the
/// user's next sync call already sees it; best effort with a short timeout (`MANA_SYNC_TIMEOUT`, 1 s by default), never failing the
/// change that caused it; mana-sync's short cache TTL covers a lost call.
struct SyncInvalidator: Sendable {
    let sync: ServiceClient
    let metrics: ServiceMetrics
    let logger: Logger

    init(syncURL: String, timeout: Duration, serviceKey: String, metrics: ServiceMetrics, logger: Logger) {
        self.sync = ServiceClient(baseURL: syncURL, serviceKey: serviceKey, timeout: timeout)
        self.metrics = metrics
        self.logger = logger
    }

    func invalidate(userID: String) async {
        let path = "/internal/billing/invalidate/" + (userID.addingPercentEncoding(withAllowedCharacters: .pathSegment) ?? userID)
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
