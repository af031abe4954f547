import Foundation
import HTTPKit
import PostgresNIO

/// One immutable ledger row, as the API shows it (camelCase).
struct LedgerTransaction: Encodable, Sendable, Equatable {
    /// Lowercase UUID, as clients compare it.
    let id: String
    let userId: String
    let type: String
    let status: String
    let amount: Int64
    let balanceBefore: Int64
    let balanceAfter: Int64
    let appId: String
    let description: String
    @NullWhenAbsent var metadata: JSONValue?
    @NullWhenAbsent var idempotencyKey: String?
    let createdAt: Date
    @NullWhenAbsent var completedAt: Date?

    /// The columns, in the order ``init(row:)`` reads them.
    static let columns = """
        id, user_id, type, status, amount, balance_before, balance_after, app_id, description, metadata::text, \
        idempotency_key, created_at, completed_at
        """

    init(row: PostgresRow) throws {
        let (id, userId, type, status, amount, before, after, appId, description, metadata, key, created, completed) =
            try row.decode((UUID, String, String, String, Int64, Int64, Int64, String, String, String?, String?, Date, Date?).self)
        self.id = id.uuidString.lowercased()
        self.userId = userId
        self.type = type
        self.status = status
        self.amount = amount
        self.balanceBefore = before
        self.balanceAfter = after
        self.appId = appId
        self.description = description
        self.metadata = try metadata.map { try JSONParser.parse($0) }
        self.idempotencyKey = key
        self.createdAt = created
        self.completedAt = completed
    }
}
