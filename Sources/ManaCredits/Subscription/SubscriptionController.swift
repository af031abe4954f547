import Foundation
import HTTPKit
import Hummingbird
import SharedAuth

/// The Cloud Sync subscription routes: the user's own (`/api/v1/sync`, JWT), the admin's
/// (`/api/v1/admin/sync`, JWT with role admin) and the internal ones
/// (`/api/v1/internal/sync`, service key).
struct SubscriptionController: Sendable {
    let subscriptions: SubscriptionRepository
    let body: BodyDecoder
    let metrics: ServiceMetrics

    struct IntervalBody: Decodable {
        let interval: String?
    }

    func addUserRoutes(to group: RouterGroup<AppRequestContext>) {
        group.get("status") { _, context in
            try JSONResponse(try await subscriptions.subscription(userID: try context.requireUser().id).status)
        }
        group.post("activate") { request, context in
            let user = try context.requireUser()
            let interval = try BillingInterval.parse(try await optionalBody(request, context).interval, default: .monthly)
            let subscription = try await subscriptions.activate(userID: user.id, interval: interval)
            metrics.count("credits_sync_activations_total", [("interval", interval.rawValue)])
            return try JSONResponse([
                "success": true, "active": true, "interval": .string(interval.rawValue),
                "nextChargeAt": Subscription.time(subscription.nextChargeAt), "amountCharged": .number(Double(interval.price)),
            ] as JSONValue)
        }
        group.post("deactivate") { _, context in
            try await subscriptions.deactivate(userID: try context.requireUser().id)
            return try JSONResponse(["success": true] as JSONValue)
        }
        group.post("change-interval") { request, context in
            let user = try context.requireUser()
            let interval = try BillingInterval.parse(try await optionalBody(request, context).interval)
            let subscription = try await subscriptions.changeInterval(userID: user.id, to: interval)
            // Nothing is charged now. As in the original, amountCharged is the new interval's
            // price, charged from effectiveAt (the next charge date); nextAmount says the same.
            return try JSONResponse([
                "success": true, "interval": .string(interval.rawValue), "amountCharged": .number(Double(interval.price)),
                "nextAmount": .number(Double(interval.price)), "effectiveAt": Subscription.time(subscription.nextChargeAt),
            ] as JSONValue)
        }
    }

    /// The group must be behind ``JWTAuthMiddleware``; this adds ``AdminOnlyMiddleware``.
    func addAdminRoutes(to group: RouterGroup<AppRequestContext>) {
        let group = group.add(middleware: AdminOnlyMiddleware())
        group.get(":userId") { _, context in
            try JSONResponse(try await subscriptions.subscription(userID: try Self.userID(context)).adminStatus)
        }
        group.post(":userId/gift") { _, context in
            let admin = try context.requireUser()
            let userID = try Self.userID(context)
            _ = try await subscriptions.gift(userID: userID, by: admin.id)
            return try JSONResponse(["success": true, "userId": .string(userID), "gifted": true, "active": true] as JSONValue)
        }
        group.delete(":userId/gift") { _, context in
            let userID = try Self.userID(context)
            _ = try await subscriptions.revokeGift(userID: userID)
            return try JSONResponse(["success": true, "userId": .string(userID), "gifted": false, "active": false] as JSONValue)
        }
    }

    func addInternalRoutes(to group: RouterGroup<AppRequestContext>) {
        group.get("status/:userId") { _, context in
            try JSONResponse(try await subscriptions.subscription(userID: try Self.userID(context)).status)
        }
        group.post("charge-recurring") { _, _ in
            let summary = await subscriptions.chargeDue()
            return try JSONResponse(summary.json)
        }
    }

    /// The body's `interval`, or nothing for an empty body.
    private func optionalBody(_ request: Request, _ context: AppRequestContext) async throws -> IntervalBody {
        let buffer = try await body.collect(request)
        guard buffer.readableBytes > 0 else { return IntervalBody(interval: nil) }
        return try BodyDecoder.decode(IntervalBody.self, from: Data(buffer: buffer))
    }

    static func userID(_ context: AppRequestContext) throws -> String {
        guard let userID = context.parameters.get("userId"), !userID.isEmpty, userID.utf8.count <= 200 else {
            throw APIError.badRequest("userId must be 1-200 characters", field: "userId")
        }
        return userID
    }
}
