/// A user's balance row. `reserved`: credits held by open reservations (not in `balance`).
struct Balance: Codable, Sendable, Equatable {
    let balance: Int64
    let totalEarned: Int64
    let totalSpent: Int64
    var reserved: Int64 = 0
}
