import Foundation
import HTTPKit
import PostgresNIO

/// A purchase of a package, with the original service's fields (`currency` is ours).
/// Every field is written, absent ones as `null`: clients of the original read them all.
struct Purchase: Encodable, Sendable, Equatable {
    /// Lowercase UUIDs.
    let id: String
    let userId: String
    let packageId: String
    let credits: Int64
    let priceEuroCents: Int64
    let currency: String
    @NullWhenAbsent var stripePaymentIntentId: String?
    @NullWhenAbsent var stripeCustomerId: String?
    let status: String
    @NullWhenAbsent var metadata: JSONValue?
    let createdAt: Date
    @NullWhenAbsent var completedAt: Date?

    static let columns = """
        id, user_id, package_id, credits, price_euro_cents, currency, stripe_payment_intent_id, stripe_customer_id, status, \
        metadata::text, created_at, completed_at
        """

    init(row: PostgresRow) throws {
        let (id, user, package, credits, price, currency, intent, customer, status, metadata, created, completed) = try row.decode(
            (UUID, String, UUID, Int64, Int64, String, String?, String?, String, String?, Date, Date?).self)
        self.id = id.uuidString.lowercased()
        self.userId = user
        self.packageId = package.uuidString.lowercased()
        self.credits = credits
        self.priceEuroCents = price
        self.currency = currency
        self.stripePaymentIntentId = intent
        self.stripeCustomerId = customer
        self.status = status
        self.metadata = try metadata.map { try JSONParser.parse($0) }
        self.createdAt = created
        self.completedAt = completed
    }
}
