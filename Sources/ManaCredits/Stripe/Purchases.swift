import Foundation
import HTTPKit
import Logging
import PostgresNIO
import SharedAuth

/// Buying credit packages through Stripe, and applying Stripe's webhook events.
struct Purchases: Sendable {
    let client: PostgresClient
    let settings: StripeSettings
    let packages: PackageRepository
    let logger: Logger

    private var stripe: StripeClient {
        get throws {
            guard let key = settings.secretKey else { throw APIError(.serviceUnavailable, message: "payments not configured") }
            return StripeClient(settings: settings, secretKey: key, logger: logger)
        }
    }

    // MARK: Purchase

    /// What a started purchase answers: the client confirms the payment with `clientSecret`.
    struct Started: Encodable, Sendable {
        let purchaseId: String
        @NullWhenAbsent var clientSecret: String?
        let amount: Int64
        let credits: Int64
    }

    /// Starts a purchase: `{purchaseId, clientSecret, amount, credits}`.
    func start(packageID: String, user: AuthenticatedUser) async throws -> Started {
        guard let packageUUID = UUID(uuidString: packageID) else {
            throw APIError.badRequest("packageId must be a UUID", field: "packageId")
        }
        guard let package = try await packages.active().first(where: { $0.id == packageUUID.uuidString.lowercased() }) else {
            throw APIError.notFound("Package not found or inactive")
        }
        let stripe = try stripe
        let customer = try await customer(for: user, stripe: stripe)
        let purchaseID = try await client.withGuardedConnection { connection in
            try await connection.query(
                """
                INSERT INTO credits.purchases (user_id, package_id, credits, price_euro_cents, currency, stripe_customer_id)
                VALUES (\(user.id), \(packageUUID), \(package.credits), \(package.priceEuroCents), 'eur', \(customer)) RETURNING id
                """, logger: logger
            ).decode(UUID.self).reduce(into: [UUID]()) { $0.append($1) }.first!
        }
        let purchase = purchaseID.uuidString.lowercased()
        let intent: StripeClient.PaymentIntent
        do {
            intent = try await stripe.createPaymentIntent(
                amount: package.priceEuroCents, customer: customer,
                metadata: [("userId", user.id), ("packageId", package.id), ("purchaseId", purchase)],
                idempotencyKey: "mana-purchase-\(purchase)")
        } catch {
            try? await client.guardedExecute("UPDATE credits.purchases SET status = 'failed' WHERE id = \(purchaseID)", logger: logger)
            throw error
        }
        try await client.guardedExecute(
            "UPDATE credits.purchases SET stripe_payment_intent_id = \(intent.id) WHERE id = \(purchaseID)", logger: logger)
        return Started(purchaseId: purchase, clientSecret: intent.client_secret, amount: package.priceEuroCents, credits: package.credits)
    }

    /// The user's Stripe customer, created once: the idempotency key makes concurrent first
    /// purchases share one customer, and the table keeps it for later ones.
    private func customer(for user: AuthenticatedUser, stripe: StripeClient) async throws -> String {
        if let known = try await storedCustomer(user.id) { return known }
        let created = try await stripe.createCustomer(userID: user.id, email: user.email, idempotencyKey: "mana-customer-\(user.id)")
        try await client.guardedExecute(
            "INSERT INTO credits.stripe_customers (user_id, stripe_customer_id) VALUES (\(user.id), \(created)) ON CONFLICT DO NOTHING",
            logger: logger)
        return try await storedCustomer(user.id) ?? created
    }

    private func storedCustomer(_ userID: String) async throws -> String? {
        try await client.withGuardedConnection { connection in
            try await connection.query("SELECT stripe_customer_id FROM credits.stripe_customers WHERE user_id = \(userID)", logger: logger)
                .decode(String.self).reduce(into: [String]()) { $0.append($1) }.first
        }
    }

    /// The caller's own purchase; 404 for anyone else's.
    func purchase(id: String, userID: String) async throws -> Purchase {
        guard let uuid = UUID(uuidString: id) else { throw APIError.notFound("Purchase not found") }
        guard let found = try await packages.purchases(userID: userID).first(where: { $0.id == uuid.uuidString.lowercased() }) else {
            throw APIError.notFound("Purchase not found")
        }
        return found
    }

    // MARK: Webhook

    struct Event: Decodable {
        struct Body: Decodable {
            let object: EventObject
        }
        let id: String
        let type: String
        let data: Body?
    }

    /// The fields mana-credits reads from an event's object (a PaymentIntent, Charge or
    /// Dispute); each is optional and a field of another shape reads as absent.
    struct EventObject: Decodable {
        let id: String?
        let metadata: [String: String]?
        /// Charge and Dispute: the PaymentIntent they belong to.
        let paymentIntent: String?
        /// Charge: the amount charged and refunded so far, in cents.
        let amount: Int64?
        let amountRefunded: Int64?
        /// Dispute: `won`, `lost`, …
        let status: String?

        private enum Keys: String, CodingKey {
            case id, metadata, payment_intent, amount, amount_refunded, status
        }

        init(from decoder: any Decoder) throws {
            let container = try decoder.container(keyedBy: Keys.self)
            id = try? container.decodeIfPresent(String.self, forKey: .id)
            metadata = try? container.decodeIfPresent([String: String].self, forKey: .metadata)
            paymentIntent = try? container.decodeIfPresent(String.self, forKey: .payment_intent)
            amount = try? container.decodeIfPresent(Int64.self, forKey: .amount)
            amountRefunded = try? container.decodeIfPresent(Int64.self, forKey: .amount_refunded)
            status = try? container.decodeIfPresent(String.self, forKey: .status)
        }
    }

    /// Applies one verified event, at most once per event id; returns whether it was new.
    func apply(_ event: Event) async throws -> Bool {
        try await client.withGuardedTransaction(logger: logger) { connection in
            let fresh = try await connection.query(
                "INSERT INTO credits.stripe_events (id, type) VALUES (\(event.id), \(event.type)) ON CONFLICT DO NOTHING RETURNING 1",
                logger: logger
            ).decode(Int.self).reduce(0, +) > 0
            guard fresh else { return false }
            switch event.type {
            case "payment_intent.succeeded":
                try await complete(event, on: connection)
            case "charge.refunded":
                try await takeBackRefund(event, on: connection)
            case "charge.dispute.created":
                try await takeBackDispute(event, on: connection)
            case "charge.dispute.closed":
                try await closeDispute(event, on: connection)
            case "payment_intent.payment_failed":
                if let intent = event.data?.object.id {
                    try await connection.query(
                        "UPDATE credits.purchases SET status = 'failed' WHERE stripe_payment_intent_id = \(intent) AND status = 'pending'",
                        logger: logger)
                }
            default:
                logger.info("Stripe event acknowledged", metadata: ["type": "\(event.type)", "event_id": "\(event.id)"])
            }
            return true
        }
    }

    /// Completes the purchase and credits its package, once: the purchase row is locked and a
    /// completed one is left alone (a second event id for the same PaymentIntent included).
    private func complete(_ event: Event, on connection: PostgresConnection) async throws {
        guard let intent = event.data?.object.id else { return }
        let rows = try await connection.query(
            """
            SELECT id, user_id, credits, status FROM credits.purchases WHERE stripe_payment_intent_id = \(intent)
                OR (stripe_payment_intent_id IS NULL AND id::text = \(event.data?.object.metadata?["purchaseId"] ?? ""))
            FOR UPDATE
            """, logger: logger)
        var found: (UUID, String, Int64, String)?
        for try await row in rows.decode((UUID, String, Int64, String).self) { found = row }
        guard let (purchaseID, userID, credits, status) = found else {
            logger.warning("payment_intent.succeeded for an unknown purchase", metadata: ["payment_intent": "\(intent)"])
            return
        }
        guard status != "completed" else { return }
        let (transaction, _) = try await LedgerRepository.credit(
            userID: userID, amount: credits, kind: .purchase, appID: "stripe", description: "Credit purchase",
            metadata: ["purchaseId": .string(purchaseID.uuidString.lowercased()), "paymentIntentId": .string(intent)],
            on: connection, logger: logger)
        try await connection.query(
            """
            UPDATE credits.purchases SET status = 'completed', completed_at = now(), transaction_id = \(transaction.id)::uuid,
                stripe_payment_intent_id = \(intent)
            WHERE id = \(purchaseID)
            """, logger: logger)
    }
}
