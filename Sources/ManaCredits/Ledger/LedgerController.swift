import HTTPKit
import HTTPTypes
import Hummingbird
import SharedAuth

/// The personal credit routes under `/api/v1/credits` (JWT).
struct LedgerController: Sendable {
    let ledger: LedgerRepository
    let packages: PackageRepository

    func addRoutes(to group: RouterGroup<AppRequestContext>) {
        group.get("balance", use: balance)
        group.post("use", use: use)
        group.get("transactions", use: transactions)
        group.get("purchases", use: purchases)
        group.get("packages", use: activePackages)
    }

    /// `GET balance`: the caller's balance, creating a zero row.
    @Sendable func balance(_ request: Request, context: AppRequestContext) async throws -> JSONResponse {
        try JSONResponse(try await ledger.balance(userID: try context.requireUser().id))
    }

    /// `POST use`: a debit of the caller's credits.
    @Sendable func use(_ request: Request, context: AppRequestContext) async throws -> JSONResponse {
        let input = try await request.decode(as: UseCreditsBody.self, context: context)
        let debit = try await ledger.debit(try input.request(userID: try context.requireUser().id))
        return JSONResponse(rawJSON: UseCreditsResponse(debit).json)
    }

    /// `GET transactions?limit&offset`: newest first.
    @Sendable func transactions(_ request: Request, context: AppRequestContext) async throws -> JSONResponse {
        let limit = try QueryParameter.integer(request, "limit", default: 50, in: 1...100)
        let offset = try QueryParameter.integer(request, "offset", default: 0, in: 0...Int(Int32.max))
        return try JSONResponse(try await ledger.transactions(userID: try context.requireUser().id, limit: limit, offset: offset))
    }

    /// `GET purchases`: the caller's package purchases.
    @Sendable func purchases(_ request: Request, context: AppRequestContext) async throws -> JSONResponse {
        try JSONResponse(try await packages.purchases(userID: try context.requireUser().id))
    }

    /// `GET packages`: the packages on sale.
    @Sendable func activePackages(_ request: Request, context: AppRequestContext) async throws -> JSONResponse {
        try JSONResponse(try await packages.active())
    }
}

/// The internal credit routes under `/api/v1/internal/credits` (service key).
struct InternalLedgerController: Sendable {
    let ledger: LedgerRepository
    let settings: LedgerSettings

    struct RefundBody: Decodable {
        let userId: String?
        let amount: JSONValue?
        let description: String?
        let appId: String?
        let metadata: JSONValue?
        let idempotencyKey: String?
    }

    struct InitBody: Decodable {
        let userId: String?
    }

    struct RefundResponse: Encodable {
        struct NewBalance: Encodable { let balance: Int64 }
        let success = true
        let transaction: LedgerTransaction
        let newBalance: NewBalance
        let message: String?
    }

    func addRoutes(to group: RouterGroup<AppRequestContext>) {
        group.get("balance/:userId", use: balance)
        group.post("use", use: use)
        group.post("refund", use: refund)
        group.post("init", use: initialize)
    }

    /// `GET balance/:userId`.
    @Sendable func balance(_ request: Request, context: AppRequestContext) async throws -> JSONResponse {
        let userID = try LedgerInput.text(context.parameters.get("userId"), field: "userId", limit: 200)
        return try JSONResponse(try await ledger.balance(userID: userID))
    }

    /// `POST use`: a debit on a user's behalf; the ledger row records the calling service.
    @Sendable func use(_ request: Request, context: AppRequestContext) async throws -> JSONResponse {
        let input = try await request.decode(as: UseCreditsBody.self, context: context)
        let userID = try LedgerInput.text(input.userId, field: "userId", limit: 200)
        var debit = try input.request(userID: userID)
        debit.caller = context.callerName
        return JSONResponse(rawJSON: UseCreditsResponse(try await ledger.debit(debit)).json)
    }

    /// `POST refund`: credits a user, once per idempotency key (body `idempotencyKey` or the
    /// `Idempotency-Key` header), at most `REFUND_MAX_AMOUNT` per call.
    @Sendable func refund(_ request: Request, context: AppRequestContext) async throws -> JSONResponse {
        let input = try await request.decode(as: RefundBody.self, context: context)
        let userID = try LedgerInput.text(input.userId, field: "userId", limit: 200)
        let amount = try LedgerInput.amount(input.amount)
        guard amount <= settings.refundMaxAmount else {
            throw APIError(
                .badRequest, message: "amount must be at most \(settings.refundMaxAmount) for one refund (REFUND_MAX_AMOUNT)",
                details: ["field": "amount", "maximum": .number(Double(settings.refundMaxAmount))])
        }
        let header = request.headers[HTTPField.Name("Idempotency-Key")!]
        guard let key = try LedgerInput.idempotencyKey(input.idempotencyKey ?? header) else {
            throw APIError.badRequest(
                "idempotencyKey is required (in the body or the Idempotency-Key header)", field: "idempotencyKey")
        }
        let description = try LedgerInput.text(input.description, field: "description", limit: 500)
        let appID = input.appId == nil ? "system" : try LedgerInput.text(input.appId, field: "appId", limit: 100)
        let refund = try await ledger.refund(
            .init(
                userID: userID, amount: amount, appID: appID, description: description, metadata: try LedgerInput.metadata(input.metadata),
                idempotencyKey: key, caller: context.callerName))
        context.logger.info(
            "internal refund",
            metadata: [
                "caller": "\(context.callerName ?? "unnamed")", "user_id": "\(userID)", "amount": "\(amount)",
                "repeated": "\(refund.repeated)",
            ])
        return try JSONResponse(
            RefundResponse(
                transaction: refund.transaction, newBalance: .init(balance: refund.balance.balance),
                message: refund.repeated ? "Transaction already processed" : nil))
    }

    /// `POST init`: the balance, creating a zero row.
    @Sendable func initialize(_ request: Request, context: AppRequestContext) async throws -> JSONResponse {
        let input = try await request.decode(as: InitBody.self, context: context)
        return try JSONResponse(try await ledger.balance(userID: try LedgerInput.text(input.userId, field: "userId", limit: 200)))
    }
}
