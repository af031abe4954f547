import HTTPKit

/// Validation shared by the personal and internal ledger routes.
enum LedgerInput {
    static let maximumAmount: Int64 = 10_000_000

    /// A positive whole number of credits up to 10,000,000. Taken as a JSON value because
    /// Foundation's decoder reports a fraction for an integer field without naming the field.
    static func amount(_ value: JSONValue?) throws -> Int64 {
        guard let value else { throw APIError.badRequest("amount is required", field: "amount") }
        guard case .number(let number) = value, number.rounded() == number, number >= 1, number <= Double(maximumAmount) else {
            throw APIError.badRequest("amount must be a whole number from 1 to \(maximumAmount)", field: "amount")
        }
        return Int64(number)
    }

    /// A required non-empty string of at most `limit` characters.
    static func text(_ value: String?, field: String, limit: Int) throws -> String {
        let trimmed = value?.trimmingCharacters(in: .whitespacesAndNewlines) ?? ""
        guard !trimmed.isEmpty else { throw APIError.badRequest("\(field) is required and must not be empty", field: field) }
        guard trimmed.count <= limit else { throw APIError.badRequest("\(field) must be at most \(limit) characters", field: field) }
        return trimmed
    }

    /// An optional JSON object of at most 16 KB.
    static func metadata(_ value: JSONValue?) throws -> JSONValue? {
        guard let value, value != .null else { return nil }
        guard case .object = value else { throw APIError.badRequest("metadata must be a JSON object", field: "metadata") }
        guard value.encodedSize() <= 16 * 1024 else {
            throw APIError.badRequest("metadata must be at most 16 KB", field: "metadata")
        }
        return value
    }

    /// An optional idempotency key of 1–200 characters.
    static func idempotencyKey(_ value: String?) throws -> String? {
        guard let value else { return nil }
        guard !value.isEmpty, value.count <= 200 else {
            throw APIError.badRequest("idempotencyKey must be 1 to 200 characters", field: "idempotencyKey")
        }
        return value
    }
}

/// `POST /credits/use` and its internal twin.
struct UseCreditsBody: Decodable {
    let userId: String?
    let amount: JSONValue?
    let appId: String?
    let description: String?
    let idempotencyKey: String?
    let metadata: JSONValue?

    func request(userID: String) throws -> LedgerRepository.DebitRequest {
        LedgerRepository.DebitRequest(
            userID: userID, amount: try LedgerInput.amount(amount),
            appID: try LedgerInput.text(appId, field: "appId", limit: 100),
            description: try LedgerInput.text(description, field: "description", limit: 500),
            idempotencyKey: try LedgerInput.idempotencyKey(idempotencyKey), metadata: try LedgerInput.metadata(metadata))
    }
}

/// The answer of a debit.
struct UseCreditsResponse: Encodable {
    struct NewBalance: Encodable {
        let balance: Int64
        let totalSpent: Int64
    }
    let success = true
    let transaction: LedgerTransaction
    let newBalance: NewBalance
    let message: String?

    init(_ debit: LedgerRepository.Debit) {
        transaction = debit.transaction
        newBalance = NewBalance(balance: debit.balance.balance, totalSpent: debit.balance.totalSpent)
        message = debit.repeated ? "Transaction already processed" : nil
    }

    /// What `JSONEncoder.sortedKeys` writes for this answer (`message` left out when absent),
    /// built directly (``LedgerTransaction/appendJSON(to:)``).
    var json: [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(512)
        out.append(UInt8(ascii: "{"))
        if let message {
            out.append(contentsOf: #""message":"#.utf8)
            JSONText.appendString(message, to: &out)
            out.append(UInt8(ascii: ","))
        }
        out.append(contentsOf: #""newBalance":{"balance":"#.utf8)
        out.append(contentsOf: String(newBalance.balance).utf8)
        out.append(contentsOf: #","totalSpent":"#.utf8)
        out.append(contentsOf: String(newBalance.totalSpent).utf8)
        out.append(contentsOf: #"},"success":true,"transaction":"#.utf8)
        transaction.appendJSON(to: &out)
        out.append(UInt8(ascii: "}"))
        return out
    }
}
