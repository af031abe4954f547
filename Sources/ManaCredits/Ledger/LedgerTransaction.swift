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

    init(
        id: String, userId: String, type: String, status: String, amount: Int64, balanceBefore: Int64, balanceAfter: Int64, appId: String,
        description: String, metadata: JSONValue?, idempotencyKey: String?, createdAt: Date, completedAt: Date?
    ) {
        self.id = id
        self.userId = userId
        self.type = type
        self.status = status
        self.amount = amount
        self.balanceBefore = balanceBefore
        self.balanceAfter = balanceAfter
        self.appId = appId
        self.description = description
        self.metadata = metadata
        self.idempotencyKey = idempotencyKey
        self.createdAt = createdAt
        self.completedAt = completedAt
    }

    init(row: PostgresRow) throws {
        let (id, userId, type, status, amount, before, after, appId, description, metadata, key, created, completed) =
            try row.decode((UUID, String, String, String, Int64, Int64, Int64, String, String, String?, String?, Date, Date?).self)
        self.init(
            id: id.uuidString.lowercased(), userId: userId, type: type, status: status, amount: amount, balanceBefore: before,
            balanceAfter: after, appId: appId, description: description, metadata: try metadata.map { try JSONParser.parse($0) },
            idempotencyKey: key, createdAt: created, completedAt: completed)
    }
}

extension LedgerTransaction {
    /// The row as `JSONEncoder.sortedKeys` writes it (keys sorted, absent optionals `null`),
    /// built directly: encoding a debit's answer with the encoder was 8 % of mana-credits' CPU
    /// under debits (perf, docs/benchmarks.md, session 34). `LedgerJSONTests` hold the two equal.
    func appendJSON(to out: inout [UInt8]) {
        func key(_ name: StaticString, first: Bool = false) {
            if !first { out.append(UInt8(ascii: ",")) }
            out.append(UInt8(ascii: "\""))
            out.append(contentsOf: UnsafeBufferPointer(start: name.utf8Start, count: name.utf8CodeUnitCount))
            out.append(contentsOf: "\":".utf8)
        }
        func text(_ value: String?) {
            if let value { JSONText.appendString(value, to: &out) } else { out.append(contentsOf: "null".utf8) }
        }
        out.append(UInt8(ascii: "{"))
        key("amount", first: true)
        out.append(contentsOf: String(amount).utf8)
        key("appId")
        JSONText.appendString(appId, to: &out)
        key("balanceAfter")
        out.append(contentsOf: String(balanceAfter).utf8)
        key("balanceBefore")
        out.append(contentsOf: String(balanceBefore).utf8)
        key("completedAt")
        text(completedAt.map(Timestamp.iso8601))
        key("createdAt")
        text(Timestamp.iso8601(createdAt))
        key("description")
        JSONText.appendString(description, to: &out)
        key("id")
        JSONText.appendString(id, to: &out)
        key("idempotencyKey")
        text(idempotencyKey)
        key("metadata")
        JSONText.append(metadata ?? .null, to: &out, sortingKeys: true)
        key("status")
        JSONText.appendString(status, to: &out)
        key("type")
        JSONText.appendString(type, to: &out)
        key("userId")
        JSONText.appendString(userId, to: &out)
        out.append(UInt8(ascii: "}"))
    }
}
