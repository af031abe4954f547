import HTTPKit
import Hummingbird
import SharedAuth

/// The personal credit routes under `/api/v1/credits` (JWT).
struct LedgerController: Sendable {
    let ledger: LedgerRepository
    let packages: PackageRepository
    let body: BodyDecoder

    func addRoutes(to group: RouterGroup<AppRequestContext>) {
        group.get("balance") { _, context in
            try JSONResponse(try await ledger.balance(userID: try context.requireUser().id))
        }
        group.post("use") { request, context in
            let input = try await body.decode(UseCreditsBody.self, from: request, context: context)
            let debit = try await ledger.debit(try input.request(userID: try context.requireUser().id))
            return try JSONResponse(UseCreditsResponse(debit))
        }
        group.get("transactions") { request, context in
            let limit = try QueryParameter.integer(request, "limit", default: 50, in: 1...100)
            let offset = try QueryParameter.integer(request, "offset", default: 0, in: 0...Int(Int32.max))
            return try JSONResponse(try await ledger.transactions(userID: try context.requireUser().id, limit: limit, offset: offset))
        }
        group.get("purchases") { _, context in
            try JSONResponse(try await packages.purchases(userID: try context.requireUser().id))
        }
        group.get("packages") { _, _ in
            try JSONResponse(try await packages.active())
        }
    }
}

/// The internal credit routes under `/api/v1/internal/credits` (service key).
struct InternalLedgerController: Sendable {
    let ledger: LedgerRepository
    let body: BodyDecoder

    struct RefundBody: Decodable {
        let userId: String?
        let amount: JSONValue?
        let description: String?
        let appId: String?
        let metadata: JSONValue?
    }

    struct InitBody: Decodable {
        let userId: String?
    }

    struct RefundResponse: Encodable {
        struct NewBalance: Encodable { let balance: Int64 }
        let success = true
        let transaction: LedgerTransaction
        let newBalance: NewBalance
    }

    func addRoutes(to group: RouterGroup<AppRequestContext>) {
        group.get("balance/:userId") { _, context in
            let userID = try LedgerInput.text(context.parameters.get("userId"), field: "userId", limit: 200)
            return try JSONResponse(try await ledger.balance(userID: userID))
        }
        group.post("use") { request, context in
            let input = try await body.decode(UseCreditsBody.self, from: request, context: context)
            let userID = try LedgerInput.text(input.userId, field: "userId", limit: 200)
            return try JSONResponse(UseCreditsResponse(try await ledger.debit(try input.request(userID: userID))))
        }
        group.post("refund") { request, context in
            let input = try await body.decode(RefundBody.self, from: request, context: context)
            let userID = try LedgerInput.text(input.userId, field: "userId", limit: 200)
            let amount = try LedgerInput.amount(input.amount)
            let description = try LedgerInput.text(input.description, field: "description", limit: 500)
            let appID = input.appId == nil ? "system" : try LedgerInput.text(input.appId, field: "appId", limit: 100)
            let (transaction, balance) = try await ledger.credit(
                userID: userID, amount: amount, kind: .refund, appID: appID, description: description,
                metadata: try LedgerInput.metadata(input.metadata))
            return try JSONResponse(RefundResponse(transaction: transaction, newBalance: .init(balance: balance.balance)))
        }
        group.post("init") { request, context in
            let input = try await body.decode(InitBody.self, from: request, context: context)
            return try JSONResponse(try await ledger.balance(userID: try LedgerInput.text(input.userId, field: "userId", limit: 200)))
        }
    }
}
