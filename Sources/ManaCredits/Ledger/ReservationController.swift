import Foundation
import HTTPKit
import HTTPTypes
import Hummingbird
import Logging
import SharedAuth

/// The two-phase and reward routes under `/api/v1/internal/credits` (service key), with the
/// upstream paths and field names: `reserve`, `commit`, `refund-reservation`, `grant`.
struct ReservationController: Sendable {
    let reservations: Reservations

    /// Most credits one reservation or grant may move.
    static let maximumAmount: Int64 = 1_000_000

    struct ReserveBody: Decodable {
        let userId: String?
        let amount: JSONValue?
        let reason: String?
        let idempotencyKey: String?
        let ttlSeconds: JSONValue?
    }

    struct ReserveResponse: Encodable {
        let reservationId: String
        let balance: Int64
        let status: String
        let expiresAt: Date
    }

    struct CommitBody: Decodable {
        let reservationId: String?
        let description: String?
    }

    struct CommitResponse: Encodable {
        let success = true
        let transactionId: String
        let status: String
        let alreadyResolved: Bool?
    }

    struct RefundBody: Decodable {
        let reservationId: String?
    }

    struct RefundResponse: Encodable {
        let success = true
        let balance: Int64
        let status: String
        let alreadyResolved: Bool?
    }

    struct GrantBody: Decodable {
        let userId: String?
        let amount: JSONValue?
        let reason: String?
        let referenceId: String?
        let description: String?
    }

    struct GrantResponse: Encodable {
        let ok = true
        let alreadyGranted: Bool
        let newBalance: Int64
        let transactionId: String
    }

    func addRoutes(to group: RouterGroup<AppRequestContext>) {
        group.post("reserve", use: reserve)
        group.post("commit", use: commit)
        group.post("refund-reservation", use: refund)
        group.post("grant", use: grant)
    }

    /// `POST reserve`: holds credits until a commit, a refund or the expiry (`ttlSeconds`,
    /// 60–86,400, default 3,600). Idempotent with `idempotencyKey` (or `Idempotency-Key`).
    @Sendable func reserve(_ request: Request, context: AppRequestContext) async throws -> JSONResponse {
        let input = try await request.decode(as: ReserveBody.self, context: context)
        let userID = try LedgerInput.text(input.userId, field: "userId", limit: 200)
        let amount = try Self.amount(input.amount)
        let reason = try LedgerInput.text(input.reason, field: "reason", limit: 200)
        let key = try Self.key(input.idempotencyKey ?? request.headers[HTTPField.Name("Idempotency-Key")!], field: "idempotencyKey")
        let ttl = try Self.ttl(input.ttlSeconds)
        let reserved = try await reservations.reserve(
            .init(userID: userID, amount: amount, reason: reason, idempotencyKey: key, ttl: ttl, caller: context.callerName))
        let reservation = reserved.reservation
        return try JSONResponse(
            ReserveResponse(reservationId: reservation.id, balance: reserved.balance, status: reservation.status, expiresAt: reservation.expiresAt))
    }

    /// `POST commit`: the held credits are spent.
    @Sendable func commit(_ request: Request, context: AppRequestContext) async throws -> JSONResponse {
        let input = try await request.decode(as: CommitBody.self, context: context)
        let id = try Self.reservationID(input.reservationId)
        let description = try input.description.map { try LedgerInput.text($0, field: "description", limit: 500) }
        let done = try await reservations.commit(id: id, description: description)
        return try JSONResponse(
            CommitResponse(
                transactionId: done.transactionID ?? done.reservation.transactionID, status: done.reservation.status,
                alreadyResolved: done.alreadyResolved ? true : nil))
    }

    /// `POST refund-reservation`: the held credits go back to the balance.
    @Sendable func refund(_ request: Request, context: AppRequestContext) async throws -> JSONResponse {
        let input = try await request.decode(as: RefundBody.self, context: context)
        let done = try await reservations.refund(id: try Self.reservationID(input.reservationId))
        return try JSONResponse(
            RefundResponse(balance: done.balance, status: done.reservation.status, alreadyResolved: done.alreadyResolved ? true : nil))
    }

    /// `POST grant`: a reward, once per (user, referenceId).
    @Sendable func grant(_ request: Request, context: AppRequestContext) async throws -> JSONResponse {
        let input = try await request.decode(as: GrantBody.self, context: context)
        let userID = try LedgerInput.text(input.userId, field: "userId", limit: 200)
        let amount = try Self.amount(input.amount)
        let reason = try LedgerInput.text(input.reason, field: "reason", limit: 64)
        let referenceID = try LedgerInput.text(input.referenceId, field: "referenceId", limit: 128)
        let description = try input.description.map { try LedgerInput.text($0, field: "description", limit: 256) }
        let granted = try await reservations.grant(
            .init(userID: userID, amount: amount, reason: reason, referenceID: referenceID, description: description, caller: context.callerName))
        return try JSONResponse(
            GrantResponse(alreadyGranted: granted.alreadyGranted, newBalance: granted.balance, transactionId: granted.transactionID))
    }

    // MARK: Input

    static func amount(_ value: JSONValue?) throws -> Int64 {
        let amount = try LedgerInput.amount(value)
        guard amount <= maximumAmount else {
            throw APIError.badRequest("amount must be a whole number from 1 to \(maximumAmount)", field: "amount")
        }
        return amount
    }

    static func key(_ value: String?, field: String) throws -> String? {
        guard let value else { return nil }
        guard !value.isEmpty, value.count <= 128 else { throw APIError.badRequest("\(field) must be 1 to 128 characters", field: field) }
        return value
    }

    static func ttl(_ value: JSONValue?) throws -> Duration {
        guard let value, value != .null else { return .seconds(3600) }
        guard case .number(let seconds) = value, seconds.rounded() == seconds, (60...86_400).contains(seconds) else {
            throw APIError.badRequest("ttlSeconds must be a whole number from 60 to 86400", field: "ttlSeconds")
        }
        return .seconds(Int64(seconds))
    }

    static func reservationID(_ value: String?) throws -> String {
        guard let value, !value.isEmpty else { throw APIError.badRequest("reservationId is required", field: "reservationId") }
        guard let id = UUID(uuidString: value) else { throw APIError.badRequest("reservationId must be a UUID", field: "reservationId") }
        return id.uuidString.lowercased()
    }
}

/// The expiry of reservations nobody resolved: every `RESERVATION_SWEEP_INTERVAL`, those
/// past `expiresAt` are refunded (cause `expired`). Metrics: `credits_reservations_open`,
/// `credits_reservations_reserved_credits`, `credits_reservations_expired_total`.
enum ReservationSweeper {
    static func service(_ reservations: Reservations, every interval: Duration, metrics: ServiceMetrics, logger: Logger) -> PeriodicService {
        PeriodicService(every: interval) {
            await sweep(reservations, metrics: metrics, logger: logger)
        }
    }

    static func sweep(_ reservations: Reservations, metrics: ServiceMetrics, logger: Logger) async {
        do {
            var expired = 0
            while true {
                let batch = try await reservations.expire()
                expired += batch
                if batch < 500 { break }
            }
            if expired > 0 {
                metrics.count("credits_reservations_expired_total", [], by: expired)
                logger.info("expired reservations refunded", metadata: ["count": "\(expired)"])
            }
            let open = try await reservations.openTotals()
            metrics.set("credits_reservations_open", to: Double(open.count))
            metrics.set("credits_reservations_reserved_credits", to: Double(open.credits))
        } catch {
            logger.error("reservation sweep failed", metadata: ["error": "\(String(reflecting: error))"])
        }
    }
}
