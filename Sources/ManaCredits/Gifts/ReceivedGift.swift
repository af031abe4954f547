import Foundation
import HTTPKit
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
    @NullWhenAbsent var creditTransactionId: String?
    @NullWhenAbsent var sourceAppId: String?
    let createdAt: Date
    /// `createdAt`: a row is written when the code is redeemed.
    let redeemedAt: Date
    let code: String
    @NullWhenAbsent var creatorName: String?
    @NullWhenAbsent var message: String?

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
        self.redeemedAt = created
        self.code = code
        self.creatorName = creatorName
        self.message = message
    }
}
