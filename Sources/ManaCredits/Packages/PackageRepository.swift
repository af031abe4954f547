import Foundation
import HTTPKit
import Logging
import PostgresNIO

/// Packages and purchases.
struct PackageRepository: Sendable {
    let client: PostgresClient
    let logger: Logger

    /// The default set the local launcher installs (1 credit = 1 euro cent; larger packs carry a bonus).
    static let defaults: [(name: String, description: String, credits: Int64, priceEuroCents: Int64)] = [
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
                SELECT \(unescaped: CreditPackage.columns) FROM credits.packages
                WHERE active OR NOT \(activeOnly) ORDER BY sort_order, name
                """, logger: logger)
            var result: [CreditPackage] = []
            for try await row in rows { result.append(try CreditPackage(row: row)) }
            return result
        }
    }

    /// Adds a package, or updates the one of that name (and activates it).
    func upsert(name: String, description: String, credits: Int64, priceEuroCents: Int64, sortOrder: Int) async throws {
        try await client.guardedExecute(
            """
            INSERT INTO credits.packages (name, description, credits, price_euro_cents, sort_order)
            VALUES (\(name), \(description), \(credits), \(priceEuroCents), \(sortOrder))
            ON CONFLICT (name) DO UPDATE SET description = EXCLUDED.description, credits = EXCLUDED.credits,
                price_euro_cents = EXCLUDED.price_euro_cents, sort_order = EXCLUDED.sort_order, active = true, updated_at = now()
            """, logger: logger)
    }

    /// Deactivates a package by name; false when there is none.
    func deactivate(name: String) async throws -> Bool {
        try await client.withGuardedConnection { connection in
            let rows = try await connection.query(
                "UPDATE credits.packages SET active = false, updated_at = now() WHERE name = \(name) RETURNING id", logger: logger)
            for try await _ in rows { return true }
            return false
        }
    }

    /// The user's purchases, newest first.
    func purchases(userID: String) async throws -> [Purchase] {
        try await client.withGuardedConnection { connection in
            let rows = try await connection.query(
                """
                SELECT \(unescaped: Purchase.columns) FROM credits.purchases
                WHERE user_id = \(userID) ORDER BY created_at DESC, id
                """, logger: logger)
            var result: [Purchase] = []
            for try await row in rows { result.append(try Purchase(row: row)) }
            return result
        }
    }
}
