/// A user's balance row.
struct Balance: Codable, Sendable, Equatable {
    let balance: Int64
    let totalEarned: Int64
    let totalSpent: Int64
}
