import Foundation
import HTTPKit
import PostgresNIO

/// A credit package on sale, with the original service's fields (`currency` is ours).
/// Every field is written, absent ones as `null`: clients of the original read them all.
struct CreditPackage: Encodable, Sendable, Equatable {
    /// Lowercase UUID.
    let id: String
    let name: String
    let description: String
    let credits: Int64
    let priceEuroCents: Int64
    let currency: String
    @NullWhenAbsent var stripePriceId: String?
    let active: Bool
    let sortOrder: Int
    @NullWhenAbsent var metadata: JSONValue?
    let createdAt: Date
    let updatedAt: Date

    static let columns = """
        id, name, description, credits, price_euro_cents, currency, stripe_price_id, active, sort_order, metadata::text, \
        created_at, updated_at
        """

    init(row: PostgresRow) throws {
        let (id, name, description, credits, price, currency, stripePrice, active, sort, metadata, created, updated) = try row.decode(
            (UUID, String, String, Int64, Int64, String, String?, Bool, Int, String?, Date, Date).self)
        self.id = id.uuidString.lowercased()
        self.name = name
        self.description = description
        self.credits = credits
        self.priceEuroCents = price
        self.currency = currency
        self.stripePriceId = stripePrice
        self.active = active
        self.sortOrder = sort
        self.metadata = try metadata.map { try JSONParser.parse($0) }
        self.createdAt = created
        self.updatedAt = updated
    }
}
