import Foundation
import HTTPKit
import Logging
import PostgresNIO

/// Stripe refunds and disputes: the purchase's credits are taken back (as far as the balance
/// allows; the rest becomes a debt later credits pay first) and the purchase is marked.
/// Each runs inside ``Purchases/apply(_:)``'s transaction, so once per event id; the
/// purchase row is locked, so events about one purchase apply one after the other.
extension Purchases {
    /// A purchase as the reversals see it.
    struct LockedPurchase {
        let id: UUID
        let userID: String
        let credits: Int64
        let status: String
        let refundedCredits: Int64
        let disputedCredits: Int64
    }

    /// `charge.refunded` (full or partial; `amount_refunded` is cumulative): takes back
    /// ⌈credits · amount_refunded / amount⌉ minus what earlier refunds took. Rounded up, so
    /// a user never keeps a credit paid for with money Stripe gave back.
    func takeBackRefund(_ event: Event, on connection: PostgresConnection) async throws {
        guard let charge = event.data?.object, let amount = charge.amount, amount > 0, let refunded = charge.amountRefunded,
            let purchase = try await lockedPurchase(for: event, on: connection)
        else { return }
        guard ["completed", "partially_refunded", "refunded"].contains(purchase.status) else {
            logger.notice(
                "charge.refunded for a purchase that holds no credits to take back",
                metadata: ["purchase_id": "\(purchase.id)", "status": "\(purchase.status)", "event_id": "\(event.id)"])
            return
        }
        let target = min(purchase.credits, (purchase.credits * min(refunded, amount) + amount - 1) / amount)
        let delta = target - purchase.refundedCredits
        if delta > 0 {
            let (taken, owed) = try await LedgerRepository.reverse(
                userID: purchase.userID, amount: delta, description: "Stripe refund", metadata: metadata(purchase, event),
                purchaseID: purchase.id, on: connection, logger: logger)
            logger.notice(
                "credits taken back after a Stripe refund",
                metadata: ["user_id": "\(purchase.userID)", "purchase_id": "\(purchase.id)", "taken": "\(taken)", "debt": "\(owed)"])
        }
        let status = refunded >= amount ? "refunded" : "partially_refunded"
        try await connection.query(
            """
            UPDATE credits.purchases SET status = \(status), refunded_credits = \(max(target, purchase.refundedCredits))
            WHERE id = \(purchase.id)
            """, logger: logger)
    }

    /// `charge.dispute.created`: takes back what the purchase still holds and marks it `disputed`.
    func takeBackDispute(_ event: Event, on connection: PostgresConnection) async throws {
        guard let purchase = try await lockedPurchase(for: event, on: connection) else { return }
        guard ["completed", "partially_refunded"].contains(purchase.status) else {
            logger.notice(
                "charge.dispute.created for a purchase that holds no credits to take back",
                metadata: ["purchase_id": "\(purchase.id)", "status": "\(purchase.status)", "event_id": "\(event.id)"])
            return
        }
        let amount = purchase.credits - purchase.refundedCredits
        if amount > 0 {
            let (taken, owed) = try await LedgerRepository.reverse(
                userID: purchase.userID, amount: amount, description: "Stripe dispute", metadata: metadata(purchase, event),
                purchaseID: purchase.id, on: connection, logger: logger)
            logger.notice(
                "credits taken back after a Stripe dispute",
                metadata: ["user_id": "\(purchase.userID)", "purchase_id": "\(purchase.id)", "taken": "\(taken)", "debt": "\(owed)"])
        }
        try await connection.query(
            "UPDATE credits.purchases SET status = 'disputed', disputed_credits = \(amount) WHERE id = \(purchase.id)", logger: logger)
    }

    /// `charge.dispute.closed`: `won` gives the disputed credits back (paying any debt first);
    /// any other outcome leaves the purchase `disputed`.
    func closeDispute(_ event: Event, on connection: PostgresConnection) async throws {
        guard let purchase = try await lockedPurchase(for: event, on: connection), purchase.status == "disputed" else { return }
        guard event.data?.object.status == "won" else {
            logger.notice("a Stripe dispute closed against us", metadata: ["purchase_id": "\(purchase.id)", "event_id": "\(event.id)"])
            return
        }
        if purchase.disputedCredits > 0 {
            _ = try await LedgerRepository.credit(
                userID: purchase.userID, amount: purchase.disputedCredits, kind: .purchase, appID: "stripe",
                description: "Stripe dispute won: credits restored", metadata: metadata(purchase, event), on: connection, logger: logger)
        }
        let status = purchase.refundedCredits > 0 ? "partially_refunded" : "completed"
        try await connection.query(
            "UPDATE credits.purchases SET status = \(status), disputed_credits = 0 WHERE id = \(purchase.id)", logger: logger)
    }

    /// The purchase of the event's PaymentIntent, locked; nil (logged) when unknown.
    private func lockedPurchase(for event: Event, on connection: PostgresConnection) async throws -> LockedPurchase? {
        guard let intent = event.data?.object.paymentIntent else {
            logger.warning("Stripe event without a payment_intent", metadata: ["type": "\(event.type)", "event_id": "\(event.id)"])
            return nil
        }
        let rows = try await connection.query(
            """
            SELECT id, user_id, credits, status, refunded_credits, disputed_credits FROM credits.purchases
            WHERE stripe_payment_intent_id = \(intent) FOR UPDATE
            """, logger: logger)
        for try await (id, user, credits, status, refunded, disputed) in rows.decode((UUID, String, Int64, String, Int64, Int64).self) {
            return LockedPurchase(
                id: id, userID: user, credits: credits, status: status, refundedCredits: refunded, disputedCredits: disputed)
        }
        logger.warning("\(event.type) for an unknown purchase", metadata: ["payment_intent": "\(intent)", "event_id": "\(event.id)"])
        return nil
    }

    private func metadata(_ purchase: LockedPurchase, _ event: Event) -> JSONValue {
        ["purchaseId": .string(purchase.id.uuidString.lowercased()), "stripeEventId": .string(event.id)]
    }
}
