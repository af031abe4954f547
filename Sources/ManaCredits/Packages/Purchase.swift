import Foundation
import HTTPKit
import PostgresNIO

/// A purchase of a package, with the original service's fields (`currency` is ours).
struct Purchase: Encodable, Sendable, Equatable {
    /// Lowercase UUIDs.
    let id: String
    let userId: String
    let packageId: String
    let credits: Int64
    let priceEuroCents: Int64
    let currency: String
    let stripePaymentIntentId: String?
    let stripeCustomerId: String?
    let status: String
    let metadata: JSONValue?
    let createdAt: Date
    let completedAt: Date?

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
        self.metadata = try metadata.map { try JSONDecoder().decode(JSONValue.self, from: Data($0.utf8)) }
        self.createdAt = created
        self.completedAt = completed
    }

    private enum CodingKeys: String, CodingKey {
        case id, userId, packageId, credits, priceEuroCents, currency, stripePaymentIntentId, stripeCustomerId, status, metadata,
            createdAt, completedAt
    }

    /// Every field, `null` included: clients of the original read them all.
    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(id, forKey: .id)
        try container.encode(userId, forKey: .userId)
        try container.encode(packageId, forKey: .packageId)
        try container.encode(credits, forKey: .credits)
        try container.encode(priceEuroCents, forKey: .priceEuroCents)
        try container.encode(currency, forKey: .currency)
        try container.encode(stripePaymentIntentId, forKey: .stripePaymentIntentId)
        try container.encode(stripeCustomerId, forKey: .stripeCustomerId)
        try container.encode(status, forKey: .status)
        try container.encode(metadata, forKey: .metadata)
        try container.encode(createdAt, forKey: .createdAt)
        try container.encode(completedAt, forKey: .completedAt)
    }
}
