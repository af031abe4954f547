import HTTPKit
import Hummingbird
import SharedAuth

/// `POST /internal/billing/invalidate/{userId}` (service key): mana-credits calls it when a
/// subscription changes, so the change takes effect at once instead of after the cache TTL.
struct BillingController: Sendable {
    let gate: BillingGate
    /// Tells the other replicas (set once the replicas share a NOTIFY channel).
    var broadcast: @Sendable (String) async -> Void = { _ in }

    func addRoutes(to group: RouterGroup<AppRequestContext>) {
        group.post("invalidate/:userId", use: invalidate)
    }

    struct InvalidateResponse: Encodable {
        let userId: String
        let invalidated = true
    }

    /// `POST invalidate/:userId`: drops the user's cached answer here and on the other replicas.
    @Sendable func invalidate(_ request: Request, context: AppRequestContext) async throws -> JSONResponse {
        guard let userID = context.parameters.get("userId"), !userID.isEmpty, userID.utf8.count <= 200 else {
            throw APIError.badRequest("userId must be 1-200 characters", field: "userId")
        }
        gate.invalidate(userID: userID)
        await broadcast(userID)
        return try JSONResponse(InvalidateResponse(userId: userID))
    }
}
