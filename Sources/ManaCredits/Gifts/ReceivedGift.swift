import Foundation
import PostgresNIO

/// One of the caller's successful redemptions: the original's redemption row
/// (`id, giftCodeId, redeemerUserId, status, creditsReceived, creditTransactionId,
/// sourceAppId, createdAt`) plus the code's `code, creatorName, message` and `redeemedAt`.
struct ReceivedGift: Encodable, Sendable, Equatable {
    /// Lowercase UUIDs.
    let id: String
    let giftCodeId: String
    let redeemerUserId: String
    let status: String
    let creditsReceived: Int64
    let creditTransactionId: String?
    let sourceAppId: String?
    let createdAt: Date
    let code: String
    let creatorName: String?
    let message: String?

    /// `r` is the redemption, `c` its code.
    static let columns = """
        r.id, r.gift_code_id, r.redeemer_user_id, r.status, r.credits_received, r.credit_transaction_id, r.source_app_id, \
        r.created_at, c.code, c.creator_name, c.message
        """

    init(row: PostgresRow) throws {
        let (id, codeID, redeemer, status, credits, transaction, sourceApp, created, code, creatorName, message) = try row.decode(
            (UUID, UUID, String, String, Int64, UUID?, String?, Date, String, String?, String?).self)
        self.id = id.uuidString.lowercased()
        self.giftCodeId = codeID.uuidString.lowercased()
        self.redeemerUserId = redeemer
        self.status = status
        self.creditsReceived = credits
        self.creditTransactionId = transaction?.uuidString.lowercased()
        self.sourceAppId = sourceApp
        self.createdAt = created
        self.code = code
        self.creatorName = creatorName
        self.message = message
    }

    private enum CodingKeys: String, CodingKey {
        case id, giftCodeId, redeemerUserId, status, creditsReceived, creditTransactionId, sourceAppId, createdAt, code, creatorName,
            message, redeemedAt
    }

    /// Every field, `null` included; `redeemedAt` is `createdAt` (a row is written when redeemed).
    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(id, forKey: .id)
        try container.encode(giftCodeId, forKey: .giftCodeId)
        try container.encode(redeemerUserId, forKey: .redeemerUserId)
        try container.encode(status, forKey: .status)
        try container.encode(creditsReceived, forKey: .creditsReceived)
        try container.encode(creditTransactionId, forKey: .creditTransactionId)
        try container.encode(sourceAppId, forKey: .sourceAppId)
        try container.encode(createdAt, forKey: .createdAt)
        try container.encode(code, forKey: .code)
        try container.encode(creatorName, forKey: .creatorName)
        try container.encode(message, forKey: .message)
        try container.encode(createdAt, forKey: .redeemedAt)
    }
}
