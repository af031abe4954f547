import Foundation

/// The reviewed adjustments of `--accept-adjustments FILE`, written as a template by a dry
/// run. One entry per user whose original balance row does not match their ledger (or whose
/// chain is broken): the figures found and the `legacy-import` transactions that would make
/// them agree. An entry applies only while it equals what the import computes from the
/// original, so a stale or edited entry is refused, never applied to other figures.
///
/// ```json
/// {"source": "old-db:5432/mana_credits", "users": [{"userId": "u1", "balance": 120, "ledgerSum": 100,
///   "adjustments": [{"afterTransaction": "…", "amount": 20, "reason": "balance 120, ledger 100"}], …}]}
/// ```
struct CreditsAdjustments: Codable, Sendable, Equatable {
    struct Adjustment: Codable, Sendable, Equatable {
        /// The transaction the adjustment follows in the chain (nil: the start).
        var afterTransaction: String?
        /// The transaction it precedes (nil: the end).
        var beforeTransaction: String?
        var amount: Int64
        var reason: String
    }

    struct Entry: Codable, Sendable, Equatable {
        var userId: String
        var problems: [String]
        /// The original balance row (nil: the user has none).
        var balance: Int64?
        var totalEarned: Int64?
        var totalSpent: Int64?
        /// What the original's completed transactions sum to, earn and spend.
        var ledgerSum: Int64
        var ledgerEarned: Int64
        var ledgerSpent: Int64
        /// Transactions (app_id `legacy-import`) that make the chain and the balance agree;
        /// totals are then taken from the ledger.
        var adjustments: [Adjustment]
    }

    var source: String
    var instructions: String? =
        "Review each entry. Passing this file with --accept-adjustments imports each listed user with the listed legacy-import transactions; remove an entry to keep its user out. An entry that no longer matches the original is refused."
    var users: [Entry]

    static func read(from path: String) throws -> CreditsAdjustments {
        try JSONDecoder().decode(CreditsAdjustments.self, from: Data(contentsOf: URL(fileURLWithPath: path)))
    }

    func write(to path: String) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try encoder.encode(self).write(to: URL(fileURLWithPath: path))
    }
}
