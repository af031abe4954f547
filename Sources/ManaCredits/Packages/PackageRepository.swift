import Foundation
import HTTPKit
import Logging
import PostgresNIO

/// A credit package on sale.
struct CreditPackage: Codable, Sendable, Equatable {
    /// Lowercase UUID.
    let id: String
    let name: String
    let description: String
    let credits: Int64
    let priceCents: Int64
    let currency: String
    let active: Bool
    let sortOrder: Int
}

/// A purchase of a package, as the API shows it.
struct Purchase: Codable, Sendable, Equatable {
    /// Lowercase UUIDs.
    let id: String
    let userId: String
    let packageId: String
    let credits: Int64
    let amount: Int64
    let currency: String
    let status: String
    let stripePaymentIntentId: String?
    let createdAt: Date
    let completedAt: Date?
}

/// Packages and purchases.
struct PackageRepository: Sendable {
    let client: PostgresClient
    let logger: Logger

    /// The default set the local launcher installs (1 credit = 1 euro cent; larger packs carry a bonus).
    static let defaults: [(name: String, description: String, credits: Int64, priceCents: Int64)] = [
        ("Starter", "500 credits", 500, 500),
        ("Standard", "1,050 credits (5 % bonus)", 1_050, 1_000),
        ("Plus", "2,750 credits (10 % bonus)", 2_750, 2_500),
        ("Max", "5,750 credits (15 % bonus)", 5_750, 5_000),
    ]

    /// Active packages by sort order.
    func active() async throws -> [CreditPackage] {
        try await list(activeOnly: true)
    }

    /// Every package, active or not, by sort order.
    func list(activeOnly: Bool) async throws -> [CreditPackage] {
        try await client.withGuardedConnection { connection in
            let rows = try await connection.query(
                """
                SELECT id, name, description, credits, price_cents, currency, active, sort_order FROM credits.packages
                WHERE active OR NOT \(activeOnly) ORDER BY sort_order, name
                """, logger: logger)
            var result: [CreditPackage] = []
            for try await (id, name, description, credits, price, currency, active, sort) in rows.decode(
                (UUID, String, String, Int64, Int64, String, Bool, Int).self)
            {
                result.append(.init(id: id.uuidString.lowercased(), name: name, description: description, credits: credits, priceCents: price,
                                    currency: currency, active: active, sortOrder: sort))
            }
            return result
        }
    }

    /// Adds a package, or updates the one of that name (and activates it).
    func upsert(name: String, description: String, credits: Int64, priceCents: Int64, sortOrder: Int) async throws {
        try await client.guardedExecute(
            """
            INSERT INTO credits.packages (name, description, credits, price_cents, sort_order)
            VALUES (\(name), \(description), \(credits), \(priceCents), \(sortOrder))
            ON CONFLICT (name) DO UPDATE SET description = EXCLUDED.description, credits = EXCLUDED.credits,
                price_cents = EXCLUDED.price_cents, sort_order = EXCLUDED.sort_order, active = true
            """, logger: logger)
    }

    /// Deactivates a package by name; false when there is none.
    func deactivate(name: String) async throws -> Bool {
        try await client.withGuardedConnection { connection in
            let rows = try await connection.query(
                "UPDATE credits.packages SET active = false WHERE name = \(name) RETURNING id", logger: logger)
            for try await _ in rows { return true }
            return false
        }
    }

    /// The user's purchases, newest first.
    func purchases(userID: String) async throws -> [Purchase] {
        try await client.withGuardedConnection { connection in
            let rows = try await connection.query(
                """
                SELECT id, user_id, package_id, credits, amount_cents, currency, status, stripe_payment_intent_id,
                    created_at, completed_at
                FROM credits.purchases WHERE user_id = \(userID) ORDER BY created_at DESC, id
                """, logger: logger)
            var result: [Purchase] = []
            for try await (id, user, package, credits, amount, currency, status, intent, created, completed) in rows.decode(
                (UUID, String, UUID, Int64, Int64, String, String, String?, Date, Date?).self)
            {
                result.append(.init(id: id.uuidString.lowercased(), userId: user, packageId: package.uuidString.lowercased(), credits: credits, amount: amount, currency: currency,
                                    status: status, stripePaymentIntentId: intent, createdAt: created, completedAt: completed))
            }
            return result
        }
    }
}
