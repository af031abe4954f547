import Foundation
import HTTPKit
import PostgresNIO

/// A credit package on sale, with the original service's fields (`currency` is ours).
struct CreditPackage: Encodable, Sendable, Equatable {
    /// Lowercase UUID.
    let id: String
    let name: String
    let description: String
    let credits: Int64
    let priceEuroCents: Int64
    let currency: String
    let stripePriceId: String?
    let active: Bool
    let sortOrder: Int
    let metadata: JSONValue?
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
        self.metadata = try metadata.map { try JSONDecoder().decode(JSONValue.self, from: Data($0.utf8)) }
        self.createdAt = created
        self.updatedAt = updated
    }

    private enum CodingKeys: String, CodingKey {
        case id, name, description, credits, priceEuroCents, currency, stripePriceId, active, sortOrder, metadata, createdAt, updatedAt
    }

    /// Every field, `null` included: clients of the original read them all.
    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(id, forKey: .id)
        try container.encode(name, forKey: .name)
        try container.encode(description, forKey: .description)
        try container.encode(credits, forKey: .credits)
        try container.encode(priceEuroCents, forKey: .priceEuroCents)
        try container.encode(currency, forKey: .currency)
        try container.encode(stripePriceId, forKey: .stripePriceId)
        try container.encode(active, forKey: .active)
        try container.encode(sortOrder, forKey: .sortOrder)
        try container.encode(metadata, forKey: .metadata)
        try container.encode(createdAt, forKey: .createdAt)
        try container.encode(updatedAt, forKey: .updatedAt)
    }
}
