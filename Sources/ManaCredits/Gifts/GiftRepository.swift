import Foundation
import HTTPKit
import Logging
import PostgresNIO
import SharedAuth

/// Gift codes: creating reserves the creator's credits, one redemption moves them to the
/// redeemer, cancelling or expiry gives them back; each step is one transaction with its
/// ledger entries.
struct GiftRepository: Sendable {
    let client: PostgresClient
    let baseURL: String
    let logger: Logger

    struct NewGift: Sendable {
        let credits: Int64
        let message: String?
        let type: String
        let targetEmail: String?
        let expirationDays: Int
        let creatorName: String?
    }

    // MARK: Creating

    /// Reserves the creator's credits and stores a new code. Without `creatorName` in the
    /// body, the name comes from the token (``GiftCode/creatorName(of:)``).
    func create(_ gift: NewGift, by creator: AuthenticatedUser) async throws -> GiftCode {
        let creatorName = gift.creatorName ?? GiftCode.creatorName(of: creator)
        return try await client.withGuardedTransaction(logger: logger) { connection in
            let debit: LedgerRepository.Debit
            do {
                debit = try await LedgerRepository.debit(
                    .init(
                        userID: creator.id, amount: gift.credits, appID: "gifts", description: "Gift code",
                        idempotencyKey: nil, metadata: ["type": .string(gift.type)], type: "gift"),
                    on: connection, logger: logger)
            } catch var error as APIError where error.status == .paymentRequired {
                error.message = "Insufficient credits to create gift"
                throw error
            }
            for _ in 0..<8 {
                let code = GiftCode.generate()
                let rows = try await connection.query(
                    """
                    INSERT INTO gifts.gift_codes (code, short_url, creator_id, creator_name, total_credits, type, target_email, message,
                        expires_at, reservation_transaction_id)
                    VALUES (\(code), \(baseURL + "/g/" + code), \(creator.id), \(creatorName), \(gift.credits), \(gift.type),
                        \(gift.targetEmail), \(gift.message), now() + make_interval(days => \(gift.expirationDays)::int),
                        \(debit.transaction.id)::uuid)
                    ON CONFLICT (code) DO NOTHING
                    RETURNING \(unescaped: GiftCode.columns)
                    """, logger: logger)
                for try await row in rows.decode(GiftCode.Row.self) { return GiftCode(row) }
            }
            throw APIError(.internalServerError, message: "could not draw an unused gift code")
        }
    }

    // MARK: Reading

    func lookup(code: String) async throws -> GiftCode? {
        try await client.withGuardedConnection { connection in
            try await Self.code(code, forUpdate: false, on: connection, logger: logger)
        }
    }

    private static func code(_ code: String, forUpdate: Bool, on connection: PostgresConnection, logger: Logger) async throws -> GiftCode? {
        let normalized = code.uppercased()
        let query: PostgresQuery =
            forUpdate
            ? "SELECT \(unescaped: GiftCode.columns) FROM gifts.gift_codes WHERE code = \(normalized) FOR UPDATE"
            : "SELECT \(unescaped: GiftCode.columns) FROM gifts.gift_codes WHERE code = \(normalized)"
        for try await row in try await connection.query(query, logger: logger).decode(GiftCode.Row.self) { return GiftCode(row) }
        return nil
    }

    func created(by userID: String) async throws -> [GiftCode] {
        try await client.withGuardedConnection { connection in
            try await connection.query(
                """
                SELECT \(unescaped: GiftCode.columns) FROM gifts.gift_codes WHERE creator_id = \(userID)
                ORDER BY created_at DESC, id LIMIT 200
                """, logger: logger
            ).decode(GiftCode.Row.self).reduce(into: []) { $0.append(GiftCode($1)) }
        }
    }

    /// The caller's successful redemptions, newest first (200 at most).
    func received(by userID: String) async throws -> [ReceivedGift] {
        try await client.withGuardedConnection { connection in
            let rows = try await connection.query(
                """
                SELECT \(unescaped: ReceivedGift.columns)
                FROM gifts.gift_redemptions r JOIN gifts.gift_codes c ON c.id = r.gift_code_id
                WHERE r.redeemer_user_id = \(userID) AND r.status = 'success'
                ORDER BY r.created_at DESC LIMIT 200
                """, logger: logger)
            var result: [ReceivedGift] = []
            for try await row in rows { result.append(try ReceivedGift(row: row)) }
            return result
        }
    }

    // MARK: Redeeming

    struct Redemption: Sendable {
        let credits: Int64
        let creatorName: String?
        let message: String?
    }

    /// Redeems `code` for `user`. Every attempt on an existing code is recorded; a failed one
    /// is committed before its error is thrown.
    func redeem(code: String, for user: AuthenticatedUser, sourceAppID: String?) async throws -> Redemption {
        enum Outcome: Sendable {
            case redeemed(Redemption)
            case failed(APIError)
        }
        let outcome: Outcome = try await client.withGuardedTransaction(logger: logger) { connection in
            guard let gift = try await Self.code(code, forUpdate: true, on: connection, logger: logger) else {
                throw APIError.notFound("Gift code not found")
            }
            if let failure = try await Self.failure(of: gift, for: user, on: connection, logger: logger) {
                try await connection.query(
                    """
                    INSERT INTO gifts.gift_redemptions (gift_code_id, redeemer_user_id, status, source_app_id)
                    VALUES (\(gift.id)::uuid, \(user.id), \(failure.status), \(sourceAppID))
                    """, logger: logger)
                return .failed(failure.error)
            }
            let (transaction, _) = try await LedgerRepository.credit(
                userID: user.id, amount: gift.totalCredits, kind: .gift, appID: sourceAppID ?? "gifts",
                description: "Gift code \(gift.code)", metadata: ["giftCodeId": .string(gift.id)], on: connection, logger: logger)
            try await connection.query(
                """
                INSERT INTO gifts.gift_redemptions (gift_code_id, redeemer_user_id, status, credits_received, credit_transaction_id, source_app_id)
                VALUES (\(gift.id)::uuid, \(user.id), 'success', \(gift.totalCredits), \(transaction.id)::uuid, \(sourceAppID))
                """, logger: logger)
            try await connection.query(
                "UPDATE gifts.gift_codes SET status = 'depleted', redeemed = true, updated_at = now() WHERE id = \(gift.id)::uuid",
                logger: logger)
            return .redeemed(Redemption(credits: gift.totalCredits, creatorName: gift.creatorName, message: gift.message))
        }
        switch outcome {
        case .redeemed(let redemption): return redemption
        case .failed(let error): throw error
        }
    }

    /// Why `user` may not redeem `gift` (its redemption status and the answer), or nil.
    private static func failure(of gift: GiftCode, for user: AuthenticatedUser, on connection: PostgresConnection, logger: Logger)
        async throws -> (status: String, error: APIError)?
    {
        if gift.type == "personalized", gift.targetEmail?.lowercased() != user.email?.lowercased() {
            return ("failed_wrong_user", .forbidden("this gift code is meant for someone else"))
        }
        switch gift.effectiveStatus() {
        case "active":
            return nil
        case "depleted":
            let mine = try await connection.query(
                """
                SELECT count(*) FROM gifts.gift_redemptions
                WHERE gift_code_id = \(gift.id)::uuid AND redeemer_user_id = \(user.id) AND status = 'success'
                """, logger: logger
            ).decode(Int.self).reduce(0, +)
            return (mine > 0 ? "failed_already_claimed" : "failed_depleted", .badRequest("Gift already claimed"))
        case "expired":
            return ("failed_expired", .badRequest("Gift code expired"))
        default:  // cancelled, refunded: its credits went back to the creator
            return ("failed_depleted", .badRequest("this gift code is no longer active"))
        }
    }

    /// Redeems every active personalized gift for `email` to a newly registered user.
    func redeemPending(userID: String, email: String) async throws -> (redeemed: Int, credits: Int64) {
        let codes = try await client.withGuardedConnection { connection in
            try await connection.query(
                """
                SELECT id, code FROM gifts.gift_codes
                WHERE type = 'personalized' AND status = 'active' AND lower(target_email) = lower(\(email)) AND expires_at > now()
                ORDER BY created_at
                """, logger: logger
            ).decode((UUID, String).self).reduce(into: [(UUID, String)]()) { $0.append($1) }
        }
        var redeemed = 0
        var credits: Int64 = 0
        let user = AuthenticatedUser(id: userID, email: email)
        for (id, code) in codes {
            do {
                credits += try await redeem(code: code, for: user, sourceAppID: "mana-auth").credits
                redeemed += 1
            } catch let error as APIError where error.status.code < 500 {
                // By id: the code itself is the credential to the credits.
                logger.info(
                    "a pending gift could not be redeemed", metadata: ["gift_id": "\(id.uuidString.lowercased())", "reason": "\(error.message)"])
            }
        }
        return (redeemed, credits)
    }

    // MARK: Giving back

    /// Cancels the creator's active code and refunds it: 404 for someone else's or an unknown
    /// id, 400 when it is no longer active.
    func cancel(id: String, by userID: String) async throws -> Int64 {
        guard UUID(uuidString: id) != nil else { throw APIError.notFound("Gift not found") }
        return try await client.withGuardedTransaction(logger: logger) { connection in
            let rows = try await connection.query(
                "SELECT \(unescaped: GiftCode.columns) FROM gifts.gift_codes WHERE id = \(id)::uuid FOR UPDATE", logger: logger)
            var found: GiftCode?
            for try await row in rows.decode(GiftCode.Row.self) { found = GiftCode(row) }
            guard let gift = found, gift.creatorID == userID else { throw APIError.notFound("Gift not found") }
            guard gift.status == "active" else { throw APIError.badRequest("Only active gifts can be cancelled") }
            try await Self.giveBack(gift, status: "cancelled", reason: "Gift code \(gift.code) cancelled", on: connection, logger: logger)
            return gift.totalCredits
        }
    }

    /// Marks active codes past their expiry `expired` and refunds their creators, each once:
    /// rows are taken with `FOR UPDATE SKIP LOCKED` and the status changes in the refund's
    /// transaction, so concurrent runs (one or several replicas) never refund twice.
    func expire(batchSize: Int = 100) async throws -> Int {
        var expired = 0
        while true {
            let count = try await client.withGuardedTransaction(logger: logger) { connection -> Int in
                let rows = try await connection.query(
                    """
                    SELECT \(unescaped: GiftCode.columns) FROM gifts.gift_codes
                    WHERE status = 'active' AND expires_at <= now()
                    ORDER BY expires_at LIMIT \(batchSize) FOR UPDATE SKIP LOCKED
                    """, logger: logger)
                let gifts = try await rows.decode(GiftCode.Row.self).reduce(into: [GiftCode]()) { $0.append(GiftCode($1)) }
                for gift in gifts {
                    try await Self.giveBack(gift, status: "expired", reason: "Gift code \(gift.code) expired", on: connection, logger: logger)
                }
                return gifts.count
            }
            expired += count
            if count < batchSize { return expired }
        }
    }

    private static func giveBack(_ gift: GiftCode, status: String, reason: String, on connection: PostgresConnection, logger: Logger) async throws {
        _ = try await LedgerRepository.credit(
            userID: gift.creatorID, amount: gift.totalCredits, kind: .refund, appID: "gifts", description: reason,
            metadata: ["giftCodeId": .string(gift.id)], on: connection, logger: logger)
        try await connection.query(
            "UPDATE gifts.gift_codes SET status = \(status), updated_at = now() WHERE id = \(gift.id)::uuid", logger: logger)
    }
}
