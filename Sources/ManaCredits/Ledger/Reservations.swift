import Foundation
import HTTPKit
import Logging
import PostgresNIO

/// Two-phase debits (reserve → commit | refund | expiry) and idempotent grants, each one
/// PostgreSQL transaction that locks the user's balance row first (the order every ledger
/// change takes, so concurrent calls on one user queue instead of deadlocking).
///
/// The ledger equals the balance at every moment: a reservation's hold is a `usage` row with
/// status `pending` and the real balances before and after; a commit completes it; a refund
/// or the expiry cancels it and writes a `refund` row of the same size. The credits held are
/// `reserved` on the balance row: `total_earned − total_spent − reserved = balance`.
struct Reservations: Sendable {
    let client: PostgresClient
    let logger: Logger

    struct Reservation: Sendable {
        let id: String
        let userID: String
        let amount: Int64
        let reason: String
        let status: String
        let transactionID: String
        let expiresAt: Date
        /// Past `expiresAt` by the database's clock when read.
        let isPastExpiry: Bool
    }

    struct ReserveRequest: Sendable {
        let userID: String
        let amount: Int64
        let reason: String
        let idempotencyKey: String?
        let ttl: Duration
        let caller: String?
    }

    /// A reserve's answer: the reservation and the balance after it (now, for a repeat).
    struct Reserved: Sendable {
        let reservation: Reservation
        let balance: Int64
        let repeated: Bool
    }

    /// Holds `amount` credits. With a key, a repeat with the same user, amount and reason
    /// answers the first reservation (whatever its status now); other parameters are 409.
    func reserve(_ request: ReserveRequest) async throws -> Reserved {
        try await client.withGuardedTransaction(logger: logger) { connection in
            // Lock first, then look for the key: a concurrent retry waits and finds the first.
            let balance = try await LedgerRepository.balanceRow(request.userID, forUpdate: true, on: connection, logger: logger)
            if let key = request.idempotencyKey,
                let earlier = try await Self.reservation(userID: request.userID, key: key, on: connection, logger: logger)
            {
                return try Self.repeatOf(earlier, request, balance: balance?.balance ?? 0)
            }
            guard let balance else { throw APIError(.notFound, message: "User balance not found") }
            guard balance.balance >= request.amount else {
                throw APIError(
                    .paymentRequired, code: "insufficient_credits", message: "Insufficient credits",
                    details: ["required": .number(Double(request.amount)), "available": .number(Double(balance.balance))])
            }
            let id = UUID().uuidString.lowercased()
            try await connection.query(
                """
                UPDATE credits.balances SET balance = balance - \(request.amount), reserved = reserved + \(request.amount), updated_at = now()
                WHERE user_id = \(request.userID)
                """, logger: logger)
            let hold = try await LedgerRepository.insert(
                userID: request.userID, type: "usage", amount: -request.amount, before: balance.balance, appID: Self.appID(of: request.reason),
                description: request.reason, metadata: ["reservationId": .string(id)], idempotencyKey: nil, caller: request.caller,
                pending: true, on: connection, logger: logger)
            let seconds = request.ttl.inSeconds
            let rows = try await connection.query(
                """
                INSERT INTO credits.reservations (id, user_id, amount, reason, idempotency_key, transaction_id, caller, expires_at)
                VALUES (\(id)::uuid, \(request.userID), \(request.amount), \(request.reason), \(request.idempotencyKey),
                    \(hold.id)::uuid, \(request.caller), clock_timestamp() + \(seconds) * interval '1 second')
                RETURNING \(unescaped: Self.columns)
                """, logger: logger)
            for try await row in rows {
                return Reserved(reservation: try Self.reservation(row), balance: balance.balance - request.amount, repeated: false)
            }
            throw APIError(.internalServerError, message: "internal server error")
        }
    }

    /// What a commit or refund did: the reservation after it, the transaction it names
    /// (the hold for a commit, the refund row for a refund), and the balance now.
    struct Resolution: Sendable {
        let reservation: Reservation
        let transactionID: String?
        let balance: Int64
        /// The reservation was already in the asked-for state: nothing was written.
        let alreadyResolved: Bool
    }

    /// Commits: the hold becomes a completed `usage` row (its balances are the real ones of
    /// the reserve), `total_spent` grows, the usage is counted. A committed reservation
    /// answers the same transaction again; a refunded or expired one is 409. A reservation
    /// past its expiry that the sweeper has not reached yet expires now, and is 409.
    func commit(id: String, description: String?) async throws -> Resolution {
        // The expiry a commit finds due is kept (committed), then answered with the 409.
        let resolution = try await client.withGuardedTransaction(logger: logger) { connection -> Resolution in
            let (reservation, balance) = try await Self.lock(id, on: connection, logger: logger)
            switch reservation.status {
            case "committed":
                return Resolution(reservation: reservation, transactionID: reservation.transactionID, balance: balance.balance, alreadyResolved: true)
            case "reserved" where !reservation.isPastExpiry:
                try await connection.query(
                    "UPDATE credits.transactions SET status = 'completed', completed_at = clock_timestamp() WHERE id = \(reservation.transactionID)::uuid",
                    logger: logger)
                try await connection.query(
                    """
                    UPDATE credits.balances SET reserved = reserved - \(reservation.amount), total_spent = total_spent + \(reservation.amount),
                        updated_at = now() WHERE user_id = \(reservation.userID)
                    """, logger: logger)
                try await connection.query(
                    """
                    INSERT INTO credits.usage_stats AS u (user_id, app_id, day, credits_used, transactions)
                    VALUES (\(reservation.userID), \(Self.appID(of: reservation.reason)), (now() AT TIME ZONE 'UTC')::date, \(reservation.amount), 1)
                    ON CONFLICT (user_id, app_id, day) DO UPDATE SET
                        credits_used = u.credits_used + EXCLUDED.credits_used, transactions = u.transactions + 1
                    """, logger: logger)
                let committed = try await Self.setStatus("committed", of: id, refund: nil, commitDescription: description, on: connection, logger: logger)
                return Resolution(reservation: committed, transactionID: reservation.transactionID, balance: balance.balance, alreadyResolved: false)
            case "reserved":
                let (expired, refundID, after) = try await Self.release(
                    reservation, locked: balance, cause: "expired", on: connection, logger: logger)
                return Resolution(reservation: expired, transactionID: refundID, balance: after, alreadyResolved: false)
            default:
                throw Self.alreadyResolved(reservation.status)
            }
        }
        guard resolution.reservation.status == "committed" else { throw Self.alreadyResolved(resolution.reservation.status) }
        return resolution
    }

    /// Refunds: the hold is cancelled and a `refund` row gives the credits back (a debt the
    /// user incurred meanwhile is paid from them first). A refunded or expired reservation
    /// answers the balance again; a committed one is 409.
    func refund(id: String) async throws -> Resolution {
        try await client.withGuardedTransaction(logger: logger) { connection in
            let (reservation, balance) = try await Self.lock(id, on: connection, logger: logger)
            switch reservation.status {
            case "refunded", "expired":
                return Resolution(reservation: reservation, transactionID: nil, balance: balance.balance, alreadyResolved: true)
            case "reserved":
                let (refunded, refundID, after) = try await Self.release(
                    reservation, locked: balance, cause: "refund", on: connection, logger: logger)
                return Resolution(reservation: refunded, transactionID: refundID, balance: after, alreadyResolved: false)
            default:
                throw Self.alreadyResolved(reservation.status)
            }
        }
    }

    /// Expires up to `limit` reservations past their expiry, each in its own transaction (safe
    /// beside other replicas: a reservation another one expired first is left as it is).
    /// Returns how many this call expired.
    func expire(limit: Int = 500) async throws -> Int {
        let ids = try await client.withGuardedConnection { connection in
            try await connection.query(
                """
                SELECT id::text FROM credits.reservations WHERE status = 'reserved' AND expires_at < clock_timestamp()
                ORDER BY expires_at LIMIT \(limit)
                """, logger: logger
            ).decode(String.self).reduce(into: [String]()) { $0.append($1) }
        }
        var expired = 0
        for id in ids {
            let done = try await client.withGuardedTransaction(logger: logger) { connection -> Bool in
                let (reservation, balance) = try await Self.lock(id, on: connection, logger: logger)
                guard reservation.status == "reserved", reservation.isPastExpiry else { return false }
                _ = try await Self.release(reservation, locked: balance, cause: "expired", on: connection, logger: logger)
                return true
            }
            if done { expired += 1 }
        }
        return expired
    }

    /// Open reservations and the credits they hold, for the metrics.
    func openTotals() async throws -> (count: Int64, credits: Int64) {
        try await client.withGuardedConnection { connection in
            try await connection.query(
                "SELECT count(*)::bigint, coalesce(sum(amount), 0)::bigint FROM credits.reservations WHERE status = 'reserved'",
                logger: logger
            ).decode((Int64, Int64).self).reduce((0, 0)) { $1 }
        }
    }

    // MARK: Grants

    struct GrantRequest: Sendable {
        let userID: String
        let amount: Int64
        let reason: String
        let referenceID: String
        let description: String?
        let caller: String?
    }

    /// Credits a reward once per (user, referenceId): the key `grant:<referenceId>` is
    /// unique per user in the ledger, checked under the balance row's lock. A repeat answers
    /// the first transaction and the balance now; the same reference with another amount is 409.
    func grant(_ request: GrantRequest) async throws -> (transactionID: String, balance: Int64, alreadyGranted: Bool) {
        try await client.withGuardedTransaction(logger: logger) { connection in
            try await LedgerRepository.ensureBalanceRow(request.userID, on: connection, logger: logger)
            let balance = try await LedgerRepository.balanceRow(request.userID, forUpdate: true, on: connection, logger: logger)
            let key = "grant:" + request.referenceID
            if let earlier = try await LedgerRepository.transaction(userID: request.userID, systemKey: key, on: connection, logger: logger) {
                guard earlier.amount == request.amount else {
                    throw APIError.conflict(
                        "referenceId was already granted with another amount",
                        details: ["field": "referenceId", "amount": .number(Double(earlier.amount))])
                }
                return (earlier.id, balance?.balance ?? 0, true)
            }
            let (transaction, after) = try await LedgerRepository.credit(
                userID: request.userID, amount: request.amount, kind: .grant, appID: "community",
                description: request.description ?? "Reward: \(request.reason)",
                metadata: ["reason": .string(request.reason), "referenceId": .string(request.referenceID)], systemKey: key,
                caller: request.caller, on: connection, logger: logger)
            return (transaction.id, after.balance, false)
        }
    }

    // MARK: Pieces

    static let columns = "id::text, user_id, amount, reason, status, transaction_id::text, expires_at, expires_at <= clock_timestamp()"

    /// The ledger `appId` of a reservation: the part of its reason before the first `:`.
    static func appID(of reason: String) -> String {
        String(reason.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false).first ?? Substring(reason))
    }

    static func alreadyResolved(_ status: String) -> APIError {
        APIError(.conflict, message: "Reservation already resolved", details: ["status": .string(status)])
    }

    private static func repeatOf(_ earlier: Reservation, _ request: ReserveRequest, balance: Int64) throws -> Reserved {
        guard earlier.amount == request.amount, earlier.reason == request.reason else {
            throw APIError.conflict(
                "idempotencyKey was already used for a reservation with another amount or reason",
                details: ["field": "idempotencyKey", "reservationId": .string(earlier.id)])
        }
        return Reserved(reservation: earlier, balance: balance, repeated: true)
    }

    private static func reservation(_ row: PostgresRow) throws -> Reservation {
        let (id, user, amount, reason, status, transaction, expires, past) = try row.decode(
            (String, String, Int64, String, String, String, Date, Bool).self)
        return Reservation(
            id: id, userID: user, amount: amount, reason: reason, status: status, transactionID: transaction, expiresAt: expires,
            isPastExpiry: past)
    }

    private static func reservation(userID: String, key: String, on connection: PostgresConnection, logger: Logger) async throws -> Reservation? {
        let rows = try await connection.query(
            "SELECT \(unescaped: columns) FROM credits.reservations WHERE user_id = \(userID) AND idempotency_key = \(key)", logger: logger)
        for try await row in rows { return try reservation(row) }
        return nil
    }

    /// The reservation with its user's balance row locked (first), then itself; 404 when unknown.
    private static func lock(_ id: String, on connection: PostgresConnection, logger: Logger) async throws -> (Reservation, Balance) {
        let user = try await connection.query("SELECT user_id FROM credits.reservations WHERE id = \(id)::uuid", logger: logger)
            .decode(String.self).reduce(nil as String?) { $1 }
        guard let user else { throw APIError(.notFound, message: "Reservation not found") }
        let balance = try await LedgerRepository.balanceRow(user, forUpdate: true, on: connection, logger: logger)
            ?? Balance(balance: 0, totalEarned: 0, totalSpent: 0)
        let rows = try await connection.query(
            "SELECT \(unescaped: columns) FROM credits.reservations WHERE id = \(id)::uuid FOR UPDATE", logger: logger)
        for try await row in rows { return (try reservation(row), balance) }
        throw APIError(.notFound, message: "Reservation not found")
    }

    /// Cancels the hold and gives the credits back with a `refund` row (`cause`: `refund` or
    /// `expired`); a debt is paid from them first, as from any credit. `total_earned` does
    /// not change: the credits were the user's all along. Returns the reservation after it,
    /// the refund row's id and the balance now.
    private static func release(
        _ reservation: Reservation, locked balance: Balance, cause: String, on connection: PostgresConnection, logger: Logger
    ) async throws -> (Reservation, String, Int64) {
        let amount = reservation.amount
        try await connection.query(
            "UPDATE credits.transactions SET status = 'cancelled', completed_at = clock_timestamp() WHERE id = \(reservation.transactionID)::uuid",
            logger: logger)
        let before = balance.balance
        let debt = try await LedgerRepository.debt(reservation.userID, on: connection, logger: logger)
        let settled = min(debt, before + amount)
        try await connection.query(
            """
            UPDATE credits.balances SET balance = balance + \(amount) - \(settled), reserved = reserved - \(amount),
                total_spent = total_spent + \(settled), debt = debt - \(settled), updated_at = now()
            WHERE user_id = \(reservation.userID)
            """, logger: logger)
        let refund = try await LedgerRepository.insert(
            userID: reservation.userID, type: "refund", amount: amount, before: before, appID: appID(of: reservation.reason),
            description: cause == "expired" ? "Reservation expired" : "Reservation refunded",
            metadata: ["reservationId": .string(reservation.id), "cause": .string(cause)], idempotencyKey: nil,
            on: connection, logger: logger)
        if settled > 0 {
            try await LedgerRepository.settleDebt(userID: reservation.userID, amount: settled, before: before + amount, on: connection, logger: logger)
        }
        let status = cause == "expired" ? "expired" : "refunded"
        let after = try await setStatus(status, of: reservation.id, refund: refund.id, commitDescription: nil, on: connection, logger: logger)
        return (after, refund.id, before + amount - settled)
    }

    private static func setStatus(
        _ status: String, of id: String, refund: String?, commitDescription: String?, on connection: PostgresConnection, logger: Logger
    ) async throws -> Reservation {
        let rows = try await connection.query(
            """
            UPDATE credits.reservations SET status = \(status), resolved_at = clock_timestamp(),
                refund_transaction_id = \(refund)::uuid, commit_description = \(commitDescription)
            WHERE id = \(id)::uuid RETURNING \(unescaped: columns)
            """, logger: logger)
        for try await row in rows { return try reservation(row) }
        throw APIError(.internalServerError, message: "internal server error")
    }
}
