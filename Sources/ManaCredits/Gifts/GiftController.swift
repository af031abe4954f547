import Foundation
import HTTPKit
import HTTPTypes
import Hummingbird
import Logging
import SharedAuth

/// The gift code routes under `/api/v1/gifts` (lookup public, the rest JWT) and
/// `/api/v1/internal/gifts` (service key).
struct GiftController: Sendable {
    let gifts: GiftRepository
    let settings: GiftSettings
    let lookupLimiter: RateLimiter
    let redeemLimiter: RateLimiter

    init(gifts: GiftRepository, settings: GiftSettings) {
        self.gifts = gifts
        self.settings = settings
        lookupLimiter = RateLimiter(limit: settings.lookupLimit, per: settings.limitWindow)
        redeemLimiter = RateLimiter(limit: settings.redeemLimit, per: settings.limitWindow)
    }

    func addPublicRoutes(to group: RouterGroup<AppRequestContext>) {
        group.get(":code", use: lookup)
    }

    func addUserRoutes(to group: RouterGroup<AppRequestContext>) {
        group.post("", use: create)
        group.get("me/created", use: created)
        group.get("me/received", use: received)
        group.post(":code/redeem", use: redeem)
        // The same parameter name as the lookup's: one path node, one name.
        group.delete(":code", use: cancel)
    }

    func addInternalRoutes(to group: RouterGroup<AppRequestContext>) {
        group.post("redeem-pending", use: redeemPending)
    }

    // MARK: Requests and answers

    /// `POST /`: `{credits | totalCredits, message?, creatorName?, targetEmail?, type?, expirationDays?}`.
    /// Members are read as JSON values and checked one by one, so each error names its field
    /// with the original's wording.
    struct NewGiftBody: Decodable {
        /// `credits`, or the original's `totalCredits` when `credits` is absent.
        let creditsField: String
        let credits: JSONValue?
        let message: JSONValue?
        let creatorName: JSONValue?
        let targetEmail: JSONValue?
        let type: JSONValue?
        let expirationDays: JSONValue?

        private enum CodingKeys: String, CodingKey {
            case credits, totalCredits, message, creatorName, targetEmail, type, expirationDays
        }

        init(from decoder: any Decoder) throws {
            let container = try decoder.container(keyedBy: CodingKeys.self)
            let creditsKey: CodingKeys = container.contains(.credits) ? .credits : .totalCredits
            creditsField = creditsKey.stringValue
            credits = try container.decodeIfPresent(JSONValue.self, forKey: creditsKey)
            message = try container.decodeIfPresent(JSONValue.self, forKey: .message)
            creatorName = try container.decodeIfPresent(JSONValue.self, forKey: .creatorName)
            targetEmail = try container.decodeIfPresent(JSONValue.self, forKey: .targetEmail)
            type = try container.decodeIfPresent(JSONValue.self, forKey: .type)
            expirationDays = try container.decodeIfPresent(JSONValue.self, forKey: .expirationDays)
        }
    }

    /// `POST :code/redeem`, body optional: `{sourceAppId? | appId?}` (a non-string is ignored).
    struct RedeemBody: Decodable {
        var sourceAppId: JSONValue?
        var appId: JSONValue?
    }

    /// `POST redeem-pending`: `{userId, email}`.
    struct RedeemPendingBody: Decodable {
        let userId: JSONValue?
        let email: JSONValue?
    }

    struct RedeemResponse: Encodable {
        let success = true
        let creditsReceived: Int64
        @NullWhenAbsent var message: String?
        @NullWhenAbsent var creatorName: String?
    }

    struct CancelResponse: Encodable {
        let success = true
        let refundedCredits: Int64
    }

    struct RedeemPendingResponse: Encodable {
        let redeemed: Int
        let totalCredits: Int64
    }

    // MARK: Handlers

    /// `GET :code` (public, rate-limited per address): what anyone with the code may see.
    @Sendable func lookup(_ request: Request, context: AppRequestContext) async throws -> JSONResponse {
        try lookupLimiter.take("address:\(address(request, context))", what: "gift code lookups")
        let code = context.parameters.get("code") ?? ""
        guard let gift = try await gifts.lookup(code: code) else { throw APIError.notFound("Gift code not found") }
        return try JSONResponse(gift.publicView)
    }

    /// `POST /`: creates a code, reserving its credits from the caller's balance.
    @Sendable func create(_ request: Request, context: AppRequestContext) async throws -> JSONResponse {
        let user = try context.requireUser()
        let input = try Self.newGift(try await request.decode(as: NewGiftBody.self, context: context))
        let gift = try await gifts.create(input, by: user)
        return try JSONResponse(gift.ownerView, status: .created)
    }

    /// `GET me/created`: the caller's codes, newest first.
    @Sendable func created(_ request: Request, context: AppRequestContext) async throws -> JSONResponse {
        try JSONResponse(try await gifts.created(by: try context.requireUser().id).map(\.ownerView))
    }

    /// `GET me/received`: the caller's redemptions.
    @Sendable func received(_ request: Request, context: AppRequestContext) async throws -> JSONResponse {
        try JSONResponse(try await gifts.received(by: try context.requireUser().id))
    }

    /// `POST :code/redeem` (rate-limited per user and address): credits the caller.
    @Sendable func redeem(_ request: Request, context: AppRequestContext) async throws -> JSONResponse {
        let user = try context.requireUser()
        try redeemLimiter.take("user:\(user.id)", what: "redeem attempts")
        try redeemLimiter.take("address:\(address(request, context))", what: "redeem attempts")
        let body = try await context.bodyDecoder.decodeIfPresent(RedeemBody.self, from: request) ?? RedeemBody()
        let appID = body.sourceAppId?.stringValue ?? body.appId?.stringValue ?? request.headers[.appID]
        let redemption = try await gifts.redeem(
            code: context.parameters.get("code") ?? "", for: user, sourceAppID: appID.map { String($0.prefix(64)) })
        return try JSONResponse(
            RedeemResponse(creditsReceived: redemption.credits, message: redemption.message, creatorName: redemption.creatorName))
    }

    /// `DELETE :code` (the code's id): cancels an unredeemed code and refunds its credits.
    @Sendable func cancel(_ request: Request, context: AppRequestContext) async throws -> JSONResponse {
        let refunded = try await gifts.cancel(id: context.parameters.get("code") ?? "", by: try context.requireUser().id)
        return try JSONResponse(CancelResponse(refundedCredits: refunded))
    }

    /// `POST redeem-pending` (service key): redeems the personalized codes waiting for a new
    /// user's email.
    @Sendable func redeemPending(_ request: Request, context: AppRequestContext) async throws -> JSONResponse {
        let body = try await request.decode(as: RedeemPendingBody.self, context: context)
        guard let userID = body.userId?.stringValue, !userID.isEmpty, userID.utf8.count <= 200 else {
            throw APIError.badRequest("userId must be 1-200 characters", field: "userId")
        }
        guard let email = body.email?.stringValue, GiftCode.isValidEmail(email) else {
            throw APIError.badRequest("email must be a valid email address", field: "email")
        }
        let (redeemed, credits) = try await gifts.redeemPending(userID: userID, email: email)
        return try JSONResponse(RedeemPendingResponse(redeemed: redeemed, totalCredits: credits))
    }

    // MARK: Input

    /// The client address for rate limits: the peer, or the `X-Forwarded-For` entry the
    /// trusted proxies vouch for (read from the right; the client writes the left).
    private func address(_ request: Request, _ context: AppRequestContext) -> String {
        let forwarded = request.headers[values: HTTPField.Name("X-Forwarded-For")!].joined(separator: ",")
        return settings.trustedProxies.clientAddress(peer: context.remoteAddress?.ipAddress, forwardedFor: forwarded)
    }

    static func newGift(_ body: NewGiftBody) throws -> GiftRepository.NewGift {
        let creditsField = body.creditsField
        guard case .number(let credits)? = body.credits, credits == credits.rounded(), (1...10_000).contains(credits) else {
            throw APIError.badRequest("\(creditsField) must be a whole number from 1 to 10000", field: creditsField)
        }
        let message = try optionalString(body.message, "message", maximum: 500)
        let creatorName = try optionalString(body.creatorName, "creatorName", maximum: 100)
        let targetEmail = try optionalString(body.targetEmail, "targetEmail", maximum: 254)
        let type = try optionalString(body.type, "type", maximum: 20) ?? (targetEmail == nil ? "simple" : "personalized")
        guard type == "simple" || type == "personalized" else {
            throw APIError.badRequest("type must be simple or personalized", field: "type")
        }
        if type == "personalized" {
            guard let targetEmail, GiftCode.isValidEmail(targetEmail) else {
                throw APIError.badRequest("a personalized gift needs a valid targetEmail", field: "targetEmail")
            }
        } else if targetEmail != nil {
            throw APIError.badRequest("targetEmail is only for personalized gifts", field: "targetEmail")
        }
        var days = 90
        if let value = body.expirationDays, value != .null {
            guard case .number(let number) = value, number == number.rounded(), (1...365).contains(number) else {
                throw APIError.badRequest("expirationDays must be a whole number from 1 to 365", field: "expirationDays")
            }
            days = Int(number)
        }
        return .init(
            credits: Int64(credits), message: message, type: type, targetEmail: targetEmail, expirationDays: days, creatorName: creatorName)
    }

    private static func optionalString(_ value: JSONValue?, _ name: String, maximum: Int) throws -> String? {
        guard let value, value != .null else { return nil }
        guard case .string(let text) = value else { throw APIError.badRequest("\(name) must be a string", field: name) }
        guard text.count <= maximum else { throw APIError.badRequest("\(name) must be at most \(maximum) characters", field: name) }
        return text.isEmpty ? nil : text
    }
}

/// Expires gift codes on an interval (first run at start); stops on graceful shutdown.
enum GiftExpiry {
    static func service(_ gifts: GiftRepository, every interval: Duration, logger: Logger) -> PeriodicService {
        PeriodicService(every: interval) {
            do {
                let expired = try await gifts.expire()
                if expired > 0 { logger.info("expired gift codes refunded", metadata: ["count": "\(expired)"]) }
            } catch {
                logger.error("gift expiry run failed", metadata: ["error": "\(String(reflecting: error))"])
            }
        }
    }
}
