import Foundation
import HTTPKit
import Hummingbird
import SharedAuth

/// The Cloud Sync subscription routes: the user's own (`/api/v1/sync`, JWT), the admin's
/// (`/api/v1/admin/sync`, JWT with role admin) and the internal ones
/// (`/api/v1/internal/sync`, service key).
struct SubscriptionController: Sendable {
    let subscriptions: SubscriptionRepository
    let metrics: ServiceMetrics

    func addUserRoutes(to group: RouterGroup<AppRequestContext>) {
        group.get("status", use: status)
        group.post("activate", use: activate)
        group.post("deactivate", use: deactivate)
        group.post("change-interval", use: changeInterval)
    }

    /// The group must be behind ``JWTAuthMiddleware``; this adds ``AdminOnlyMiddleware``.
    func addAdminRoutes(to group: RouterGroup<AppRequestContext>) {
        let group = group.add(middleware: AdminOnlyMiddleware())
        group.get(":userId", use: adminStatus)
        group.post(":userId/gift", use: gift)
        group.delete(":userId/gift", use: revokeGift)
    }

    func addInternalRoutes(to group: RouterGroup<AppRequestContext>) {
        group.get("status/:userId", use: internalStatus)
        group.post("charge-recurring", use: chargeRecurring)
    }

    // MARK: Requests and answers

    /// `{"interval": "monthly" | "quarterly" | "yearly"}`; an empty body is allowed.
    struct IntervalBody: Decodable {
        let interval: String?
    }

    struct ActivateResponse: Encodable {
        let success = true
        let active = true
        let interval: String
        @NullWhenAbsent var nextChargeAt: Date?
        let amountCharged: Int64
    }

    /// Nothing is charged now. As in the original, `amountCharged` is the new interval's
    /// price, charged from `effectiveAt` (the next charge date); `nextAmount` says the same.
    struct ChangeIntervalResponse: Encodable {
        let success = true
        let interval: String
        let amountCharged: Int64
        let nextAmount: Int64
        @NullWhenAbsent var effectiveAt: Date?
    }

    struct GiftResponse: Encodable {
        let success = true
        let userId: String
        let gifted: Bool
        let active: Bool
    }

    struct SuccessResponse: Encodable {
        let success = true
    }

    // MARK: The user's own

    /// `GET status`: the caller's subscription.
    @Sendable func status(_ request: Request, context: AppRequestContext) async throws -> JSONResponse {
        try JSONResponse(try await subscriptions.subscription(userID: try context.requireUser().id).status)
    }

    /// `POST activate`: charges the interval's price and activates.
    @Sendable func activate(_ request: Request, context: AppRequestContext) async throws -> JSONResponse {
        let user = try context.requireUser()
        let interval = try BillingInterval.parse(try await Self.intervalBody(request, context).interval, default: .monthly)
        let subscription = try await subscriptions.activate(userID: user.id, interval: interval)
        metrics.count("credits_sync_activations_total", [("interval", interval.rawValue)])
        return try JSONResponse(
            ActivateResponse(interval: interval.rawValue, nextChargeAt: subscription.nextChargeAt, amountCharged: interval.price))
    }

    /// `POST deactivate`: stops renewals (no refund).
    @Sendable func deactivate(_ request: Request, context: AppRequestContext) async throws -> JSONResponse {
        try await subscriptions.deactivate(userID: try context.requireUser().id)
        return try JSONResponse(SuccessResponse())
    }

    /// `POST change-interval`: the next renewal charges the new interval.
    @Sendable func changeInterval(_ request: Request, context: AppRequestContext) async throws -> JSONResponse {
        let user = try context.requireUser()
        let interval = try BillingInterval.parse(try await Self.intervalBody(request, context).interval)
        let subscription = try await subscriptions.changeInterval(userID: user.id, to: interval)
        return try JSONResponse(
            ChangeIntervalResponse(
                interval: interval.rawValue, amountCharged: interval.price, nextAmount: interval.price,
                effectiveAt: subscription.nextChargeAt))
    }

    // MARK: Admins

    /// `GET :userId`: the status plus the audit columns.
    @Sendable func adminStatus(_ request: Request, context: AppRequestContext) async throws -> JSONResponse {
        try JSONResponse(try await subscriptions.subscription(userID: try Self.userID(context)).adminStatus)
    }

    /// `POST :userId/gift`: a subscription that is never charged.
    @Sendable func gift(_ request: Request, context: AppRequestContext) async throws -> JSONResponse {
        let admin = try context.requireUser()
        let userID = try Self.userID(context)
        _ = try await subscriptions.gift(userID: userID, by: admin.id)
        return try JSONResponse(GiftResponse(userId: userID, gifted: true, active: true))
    }

    /// `DELETE :userId/gift`: ends a gifted subscription.
    @Sendable func revokeGift(_ request: Request, context: AppRequestContext) async throws -> JSONResponse {
        let userID = try Self.userID(context)
        _ = try await subscriptions.revokeGift(userID: userID)
        return try JSONResponse(GiftResponse(userId: userID, gifted: false, active: false))
    }

    // MARK: Internal

    /// `GET status/:userId`: what mana-sync's billing gate asks.
    @Sendable func internalStatus(_ request: Request, context: AppRequestContext) async throws -> JSONResponse {
        try JSONResponse(try await subscriptions.subscription(userID: try Self.userID(context)).status)
    }

    /// `POST charge-recurring`: one renewal run now, `{charged, paused, errors, total}`.
    @Sendable func chargeRecurring(_ request: Request, context: AppRequestContext) async throws -> JSONResponse {
        try JSONResponse(await subscriptions.chargeDue())
    }

    // MARK: Helpers

    /// The body's `interval`, or nothing for an empty body.
    private static func intervalBody(_ request: Request, _ context: AppRequestContext) async throws -> IntervalBody {
        try await context.bodyDecoder.decodeIfPresent(IntervalBody.self, from: request) ?? IntervalBody(interval: nil)
    }

    static func userID(_ context: AppRequestContext) throws -> String {
        guard let userID = context.parameters.get("userId"), !userID.isEmpty, userID.utf8.count <= 200 else {
            throw APIError.badRequest("userId must be 1-200 characters", field: "userId")
        }
        return userID
    }
}
