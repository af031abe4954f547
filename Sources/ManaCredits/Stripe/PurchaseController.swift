import Foundation
import HTTPKit
import HTTPTypes
import Hummingbird
import SharedAuth

/// `POST /api/v1/credits/purchase`, `GET /api/v1/credits/purchase/:id` (JWT) and
/// `POST /api/v1/webhooks/stripe` (Stripe signature).
struct PurchaseController: Sendable {
    let purchases: Purchases
    let settings: StripeSettings
    let metrics: ServiceMetrics

    func addUserRoutes(to group: RouterGroup<AppRequestContext>) {
        group.post("purchase", use: start)
        group.get("purchase/:id", use: purchase)
    }

    func addWebhookRoutes(to group: RouterGroup<AppRequestContext>) {
        group.post("stripe", use: webhook)
    }

    struct WebhookResponse: Encodable {
        let received = true
    }

    /// `POST purchase` `{"packageId"}`: starts a Stripe payment for a package.
    @Sendable func start(_ request: Request, context: AppRequestContext) async throws -> JSONResponse {
        let user = try context.requireUser()
        let json = try await request.decode(as: JSONValue.self, context: context)
        guard let packageID = json["packageId"]?.stringValue else {
            throw APIError.badRequest("packageId is required and must be a string", field: "packageId")
        }
        return try JSONResponse(try await purchases.start(packageID: packageID, user: user))
    }

    /// `GET purchase/:id`: one of the caller's purchases.
    @Sendable func purchase(_ request: Request, context: AppRequestContext) async throws -> JSONResponse {
        try JSONResponse(try await purchases.purchase(id: context.parameters.get("id") ?? "", userID: try context.requireUser().id))
    }

    /// `POST /api/v1/webhooks/stripe`: a signed Stripe event, applied once.
    @Sendable func webhook(_ request: Request, context: AppRequestContext) async throws -> JSONResponse {
        guard let secret = settings.webhookSecret else { throw APIError(.serviceUnavailable, message: "webhooks not configured") }
        let payload = Data(buffer: try await context.bodyDecoder.collect(request))
        do {
            try WebhookSignature.verify(
                header: request.headers[HTTPField.Name("Stripe-Signature")!], payload: payload, secret: secret,
                tolerance: settings.tolerance.inSeconds)
        } catch {
            metrics.count("credits_stripe_webhooks_total", [("outcome", "bad_signature")])
            throw APIError.badRequest(Self.message(for: error, tolerance: settings.tolerance), field: "Stripe-Signature")
        }
        let event: Purchases.Event
        do {
            event = try JSONDecoder().decode(Purchases.Event.self, from: payload)
        } catch {
            throw APIError.badRequest("the event is not a Stripe event object")
        }
        let fresh = try await purchases.apply(event)
        metrics.count("credits_stripe_webhooks_total", [("outcome", fresh ? "applied" : "duplicate")])
        return try JSONResponse(WebhookResponse())
    }

    static func message(for failure: WebhookSignature.Failure, tolerance: Duration) -> String {
        switch failure {
        case .missingHeader: "the Stripe-Signature header is missing"
        case .malformedHeader: "the Stripe-Signature header has no timestamp or no v1 signature"
        case .staleTimestamp: "the Stripe-Signature timestamp is outside the \(tolerance.secondsText) s tolerance"
        case .noMatch: "no Stripe-Signature v1 signature matches"
        }
    }
}
