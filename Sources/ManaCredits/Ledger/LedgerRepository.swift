import Foundation
import HTTPKit
import Logging
import PostgresNIO

/// The ledger's operations, each one PostgreSQL transaction. Changes of one user serialise
/// on the user's balance row (`SELECT … FOR UPDATE`), so concurrent debits never overdraw
/// and never fail with a serialisation error.
struct LedgerRepository: Sendable {
    let client: PostgresClient
    let logger: Logger
    /// Debits that arrive while PostgreSQL is busy go to it together (`credits.debit_batch`).
    let batches: StatementBatches<PreparedDebit, Result<Debit, any Error>>

    /// - Parameters:
    ///   - lanes: debit statements at once (`CREDITS_DEBIT_LANES`); debits arriving meanwhile go together.
    ///   - batched: told of each batch of debits PostgreSQL answered: its size, and whether it refused it (metrics).
    init(
        client: PostgresClient, logger: Logger, lanes: Int = LedgerSettings().debitLanes,
        batched: @escaping @Sendable (_ size: Int, _ refused: Bool) -> Void = { _, _ in }
    ) {
        self.client = client
        self.logger = logger
        batches = StatementBatches(
            settings: .init(lanes: lanes), size: { $0.size }, precedes: { $0.request.userID < $1.request.userID },
            alone: { debit in await Result(awaiting: { try await Self.debit(alone: debit, client: client, logger: logger) }) },
            together: { try await Self.debit(batch: $0, client: client, logger: logger) },
            batched: batched)
    }

    /// What a debit returns: the transaction and whether it was a repeat of an earlier one.
    struct Debit: Sendable {
        let transaction: LedgerTransaction
        let balance: Balance
        let repeated: Bool
    }

    struct DebitRequest: Sendable {
        let userID: String
        let amount: Int64
        let appID: String
        let description: String
        let idempotencyKey: String?
        let metadata: JSONValue?
        /// `usage` for spending; `gift` for the credits a gift code reserves.
        var type = "usage"
        /// A key the service makes for itself (`sync-renewal:<due>`), kept apart from users' keys.
        var systemKey: String? = nil
        /// The named service key behind an internal call.
        var caller: String? = nil
    }

    /// A debit with its metadata's text, as a batch sends it.
    struct PreparedDebit: Sendable {
        let request: DebitRequest
        let metadataText: String?
        /// Its bytes as a batch counts them (``StatementBatches``).
        let size: Int

        init(_ request: DebitRequest) {
            self.request = request
            metadataText = request.metadata.map(JSONText.sorted)
            size = request.userID.utf8.count + request.appID.utf8.count + request.description.utf8.count
                + (request.idempotencyKey?.utf8.count ?? 0) + (metadataText?.utf8.count ?? 0) + 64
        }
    }

    // MARK: Reading

    /// The balance, creating a zero row when the user has none.
    /// One statement: the inserted row, or else the row already there. A row another
    /// transaction inserted after this statement's snapshot is in neither: then read it again.
    func balance(userID: String) async throws -> Balance {
        try await client.withGuardedConnection { connection in
            let rows = try await connection.query(
                """
                WITH created AS (
                    INSERT INTO credits.balances (user_id) VALUES (\(userID)) ON CONFLICT (user_id) DO NOTHING
                    RETURNING balance, total_earned, total_spent, reserved)
                SELECT balance, total_earned, total_spent, reserved FROM created
                UNION ALL SELECT balance, total_earned, total_spent, reserved FROM credits.balances WHERE user_id = \(userID)
                """, logger: logger)
            for try await (balance, earned, spent, reserved) in rows.decode((Int64, Int64, Int64, Int64).self) {
                return Balance(balance: balance, totalEarned: earned, totalSpent: spent, reserved: reserved)
            }
            return try await Self.balance(userID, on: connection, logger: logger)
        }
    }

    /// The user's transactions, newest first.
    func transactions(userID: String, limit: Int, offset: Int) async throws -> [LedgerTransaction] {
        try await client.withGuardedConnection { connection in
            let rows = try await connection.query(
                """
                SELECT \(unescaped: LedgerTransaction.columns) FROM credits.transactions
                WHERE user_id = \(userID) ORDER BY seq DESC LIMIT \(limit) OFFSET \(offset)
                """, logger: logger)
            var result: [LedgerTransaction] = []
            for try await row in rows { result.append(try LedgerTransaction(row: row)) }
            return result
        }
    }

    // MARK: Changing

    /// Debits `amount` ("use"). 402 when the balance is short; with an idempotency key, a
    /// repeat returns the first transaction and a different amount is 409. One statement, so
    /// one round trip and its own transaction, or, when every debit lane is busy, a place in
    /// the next batch (``StatementBatches``, `credits.debit_batch`).
    func debit(_ request: DebitRequest) async throws -> Debit {
        let debit = PreparedDebit(request)
        guard batches.admits(debit) else { return try await Self.debit(alone: debit, client: client, logger: logger) }
        return try await batches.run(debit).get()
    }

    /// One debit in its own statement.
    static func debit(alone debit: PreparedDebit, client: PostgresClient, logger: Logger) async throws -> Debit {
        try await client.withGuardedConnection { connection in
            try await Self.debit(debit.request, metadataText: debit.metadataText, on: connection, logger: logger)
        }
    }

    /// Debits ordered by user in one call of `credits.debit_batch` (migration 0011): each one's
    /// outcome (a debit, or its 402 or 409) in the same order.
    static func debit(batch debits: [PreparedDebit], client: PostgresClient, logger: Logger) async throws -> [Result<Debit, any Error>] {
        try await client.withGuardedConnection { connection in
            var outcomes: [Result<Debit, any Error>] = []
            outcomes.reserveCapacity(debits.count)
            try await refusedAsBatch {
                for try await row in try await connection.execute(DebitBatchStatement(debits: debits), logger: logger) {
                    let n = try row.makeRandomAccess()["n"].decode(Int.self)
                    guard n == outcomes.count + 1 else { throw DatabaseConnectionLost() }
                    outcomes.append(Result { try Self.debit(debits[n - 1].request, row: row) })
                }
            }
            guard outcomes.count == debits.count else { throw DatabaseConnectionLost() }
            return outcomes
        }
    }

    /// Several debits in one call of `credits.debit_batch`, prepared once per connection: per
    /// debit its values in parallel arrays, and their metadata in one JSON array.
    struct DebitBatchStatement: PostgresPreparedStatement {
        static let sql = """
            SELECT * FROM credits.debit_batch($1::text[], $2::bigint[], $3::text[], $4::text[], $5::text[], $6::jsonb, $7::text[], $8::text[], $9::text[])
            """
        typealias Row = PostgresRow

        let debits: [PreparedDebit]

        func makeBindings() throws -> PostgresBindings {
            // {"m": metadata} or {} per debit: a JSON null given as metadata stays a JSON null.
            var metadata = "["
            for (index, debit) in debits.enumerated() {
                if index > 0 { metadata += "," }
                metadata += debit.metadataText.map { #"{"m":"# + $0 + "}" } ?? "{}"
            }
            metadata += "]"
            let requests = debits.map(\.request)
            var bindings = PostgresBindings(capacity: 9)
            bindings.append(requests.map(\.userID))
            bindings.append(requests.map(\.amount))
            bindings.append(requests.map(\.type))
            bindings.append(requests.map(\.appID))
            bindings.append(requests.map(\.description))
            bindings.append(JSONTextParameter(Array(metadata.utf8)))
            bindings.append(requests.map { $0.idempotencyKey ?? "" })
            bindings.append(requests.map { $0.systemKey ?? "" })
            bindings.append(requests.map { $0.caller ?? "" })
            return bindings
        }

        func decodeRow(_ row: PostgresRow) throws -> Row { row }
    }

    /// The debit, prepared once per connection: a debit sends only its values (Bind, Execute),
    /// and PostgreSQL neither parses nor plans the statement again.
    struct DebitStatement: PostgresPreparedStatement {
        static let sql = "SELECT * FROM credits.debit($1::text, $2::bigint, $3::text, $4::text, $5::text, $6::jsonb, $7::text, $8::text, $9::text)"
        /// Named, not taken from the first debit's values: PostgresNIO prepares a statement
        /// with the types of the values it first binds, and a debit without metadata binds
        /// `$6` as an untyped NULL, so PostgreSQL would read `$6` as jsonb and refuse the
        /// metadata text of every later debit on that connection (`jsonb_recv`, a 500). The
        /// other prepared statements need no list: each optional value they bind is cast in
        /// their SQL to the type it is bound as (`$4::text`), which PostgreSQL takes instead.
        static let bindingDataTypes: [PostgresDataType] = [.text, .int8, .text, .text, .text, .text, .text, .text, .text]
        typealias Row = PostgresRow

        let request: DebitRequest
        let metadataText: String?

        func makeBindings() throws -> PostgresBindings {
            var bindings = PostgresBindings(capacity: 9)
            bindings.append(request.userID)
            bindings.append(request.amount)
            bindings.append(request.type)
            bindings.append(request.appID)
            bindings.append(request.description)
            bindings.append(metadataText)
            bindings.append(request.idempotencyKey)
            bindings.append(request.systemKey)
            bindings.append(request.caller)
            return bindings
        }

        func decodeRow(_ row: PostgresRow) throws -> Row { row }
    }

    /// Debits, alone or inside a caller's transaction (the sync subscription and gifts reuse
    /// this), in one call of `credits.debit` (migration 0008): lock, key lookup, guard,
    /// balance, ledger row and usage count. Throws the 402 or 409 having written nothing, so
    /// the caller's transaction stays usable.
    static func debit(
        _ request: DebitRequest, metadataText: String? = nil, on connection: PostgresConnection, logger: Logger
    ) async throws -> Debit {
        let metadataText = metadataText ?? request.metadata.map(JSONText.sorted)
        let rows = try await connection.execute(DebitStatement(request: request, metadataText: metadataText), logger: logger)
        for try await row in rows { return try debit(request, row: row) }
        throw APIError(.internalServerError, message: "internal server error")
    }

    /// A row of `credits.debit`: the debit, or its 402 or 409.
    static func debit(_ request: DebitRequest, row: PostgresRow) throws -> Debit {
        let columns = row.makeRandomAccess()
        let outcome = try columns["outcome"].decode(String.self)
        let balance = Balance(
            balance: try columns["balance"].decode(Int64.self), totalEarned: try columns["total_earned"].decode(Int64.self),
            totalSpent: try columns["total_spent"].decode(Int64.self))
        switch outcome {
        case "debited", "repeated":
            return Debit(transaction: try LedgerTransaction(row: row), balance: balance, repeated: outcome == "repeated")
        case "conflict":
            throw APIError.conflict(
                "idempotencyKey was already used for a different transaction",
                details: ["field": "idempotencyKey", "amount": .number(Double(-(try columns["amount"].decode(Int64.self))))])
        default:
            // The original's texts: a user without a balance row has none to debit.
            throw APIError(
                .paymentRequired, code: "insufficient_credits",
                message: outcome == "no_balance" ? "User balance not found" : "Insufficient credits",
                details: ["required": .number(Double(request.amount)), "available": .number(Double(balance.balance))])
        }
    }

    /// Credits `amount` (purchase, gift, refund), creating the balance row if needed.
    func credit(
        userID: String, amount: Int64, kind: CreditKind, appID: String, description: String, metadata: JSONValue?
    ) async throws -> (LedgerTransaction, Balance) {
        try await client.withGuardedTransaction(logger: logger) { connection in
            try await Self.credit(
                userID: userID, amount: amount, kind: kind, appID: appID, description: description, metadata: metadata,
                on: connection, logger: logger)
        }
    }

    struct RefundRequest: Sendable {
        let userID: String
        let amount: Int64
        let appID: String
        let description: String
        let metadata: JSONValue?
        /// The calling service's key for this refund, stored as the system key `internal-refund:<key>`.
        let idempotencyKey: String
        /// The named service key that asked.
        let caller: String?
    }

    /// A service's refund, once per (user, idempotency key): a retry answers the first
    /// transaction (`repeated`), the same key with another amount is 409.
    func refund(_ request: RefundRequest) async throws -> (transaction: LedgerTransaction, balance: Balance, repeated: Bool) {
        try await client.withGuardedTransaction(logger: logger) { connection in
            try await Self.ensureBalanceRow(request.userID, on: connection, logger: logger)
            // Lock first, then look for the key: a concurrent retry waits and finds the first.
            _ = try await Self.balanceRow(request.userID, forUpdate: true, on: connection, logger: logger)
            let key = "internal-refund:" + request.idempotencyKey
            if let earlier = try await Self.transaction(userID: request.userID, systemKey: key, on: connection, logger: logger) {
                guard earlier.amount == request.amount else {
                    throw APIError.conflict(
                        "idempotencyKey was already used for a refund of another amount",
                        details: ["field": "idempotencyKey", "amount": .number(Double(earlier.amount))])
                }
                return (earlier, try await Self.balance(request.userID, on: connection, logger: logger), true)
            }
            let (transaction, balance) = try await Self.credit(
                userID: request.userID, amount: request.amount, kind: .refund, appID: request.appID, description: request.description,
                metadata: request.metadata, systemKey: key, caller: request.caller, on: connection, logger: logger)
            return (transaction, balance, false)
        }
    }

    /// Credits inside a caller's transaction (purchases and gifts reuse this). A debt is paid
    /// first: the credit row is followed by a `reversal` row of the settled amount.
    static func credit(
        userID: String, amount: Int64, kind: CreditKind, appID: String, description: String, metadata: JSONValue?,
        systemKey: String? = nil, caller: String? = nil, on connection: PostgresConnection, logger: Logger
    ) async throws -> (LedgerTransaction, Balance) {
        try await ensureBalanceRow(userID, on: connection, logger: logger)
        let before = try await balanceRow(userID, forUpdate: true, on: connection, logger: logger)?.balance ?? 0
        let debt = try await debt(userID, on: connection, logger: logger)
        let settled = min(debt, before + amount)
        // One statement: a debtor's balance stays 0 (debtors_have_no_balance).
        try await connection.query(
            """
            UPDATE credits.balances SET balance = balance + \(amount) - \(settled), total_earned = total_earned + \(amount),
                total_spent = total_spent + \(settled), debt = debt - \(settled), updated_at = now() WHERE user_id = \(userID)
            """, logger: logger)
        let transaction = try await insert(
            userID: userID, type: kind.rawValue, amount: amount, before: before, appID: appID, description: description,
            metadata: metadata, idempotencyKey: nil, systemKey: systemKey, caller: caller, on: connection, logger: logger)
        if settled > 0 {
            try await settleDebt(userID: userID, amount: settled, before: before + amount, on: connection, logger: logger)
        }
        return (transaction, try await balance(userID, on: connection, logger: logger))
    }

    /// Records that `amount` of a debt was paid from credits that just came in (the balance
    /// was `before` with them): a `reversal` row of that size and its line in `credits.debts`.
    /// The caller has moved the balance row's figures already.
    static func settleDebt(userID: String, amount: Int64, before: Int64, on connection: PostgresConnection, logger: Logger) async throws {
        let settlement = try await insert(
            userID: userID, type: "reversal", amount: -amount, before: before, appID: "system",
            description: "Debt settled", metadata: ["debtSettled": .number(Double(amount))], idempotencyKey: nil,
            on: connection, logger: logger)
        try await recordDebt(userID: userID, amount: -amount, reason: "settled", purchaseID: nil, transactionID: settlement.id, on: connection, logger: logger)
    }

    /// Takes back up to `amount` credits inside a caller's transaction: what the balance
    /// holds now, the rest as a debt later credits pay first. Returns (taken, owed).
    static func reverse(
        userID: String, amount: Int64, description: String, metadata: JSONValue, purchaseID: UUID?,
        on connection: PostgresConnection, logger: Logger
    ) async throws -> (taken: Int64, owed: Int64) {
        try await ensureBalanceRow(userID, on: connection, logger: logger)
        let before = try await balanceRow(userID, forUpdate: true, on: connection, logger: logger)?.balance ?? 0
        let taken = min(before, amount)
        let owed = amount - taken
        try await connection.query(
            """
            UPDATE credits.balances SET balance = balance - \(taken), total_spent = total_spent + \(taken), debt = debt + \(owed),
                updated_at = now() WHERE user_id = \(userID)
            """, logger: logger)
        var transactionID: String?
        if taken > 0 {
            var details = metadata.objectValue ?? [:]
            details["debtIncurred"] = .number(Double(owed))
            transactionID = try await insert(
                userID: userID, type: "reversal", amount: -taken, before: before, appID: "stripe", description: description,
                metadata: .object(details), idempotencyKey: nil, on: connection, logger: logger
            ).id
        }
        if owed > 0 {
            try await recordDebt(
                userID: userID, amount: owed, reason: description, purchaseID: purchaseID, transactionID: transactionID,
                on: connection, logger: logger)
        }
        return (taken, owed)
    }

    // MARK: SQL pieces

    /// The user's outstanding debt (0 without a row).
    static func debt(_ userID: String, on connection: PostgresConnection, logger: Logger) async throws -> Int64 {
        try await connection.query("SELECT debt FROM credits.balances WHERE user_id = \(userID)", logger: logger)
            .decode(Int64.self).reduce(0, +)
    }

    private static func recordDebt(
        userID: String, amount: Int64, reason: String, purchaseID: UUID?, transactionID: String?, on connection: PostgresConnection,
        logger: Logger
    ) async throws {
        try await connection.query(
            """
            INSERT INTO credits.debts (user_id, amount, reason, purchase_id, transaction_id)
            VALUES (\(userID), \(amount), \(reason), \(purchaseID), \(transactionID)::uuid)
            """, logger: logger)
    }

    static func ensureBalanceRow(_ userID: String, on connection: PostgresConnection, logger: Logger) async throws {
        try await connection.query(
            "INSERT INTO credits.balances (user_id) VALUES (\(userID)) ON CONFLICT (user_id) DO NOTHING", logger: logger)
    }

    /// The user's balance row, locked when `forUpdate`; nil when the user has none.
    static func balanceRow(
        _ userID: String, forUpdate: Bool, on connection: PostgresConnection, logger: Logger
    ) async throws -> Balance? {
        let lock: PostgresQuery = forUpdate ? "FOR UPDATE" : ""
        let rows = try await connection.query(
            "SELECT balance, total_earned, total_spent, reserved FROM credits.balances WHERE user_id = \(userID) \(unescaped: lock.sql)",
            logger: logger)
        for try await (balance, earned, spent, reserved) in rows.decode((Int64, Int64, Int64, Int64).self) {
            return Balance(balance: balance, totalEarned: earned, totalSpent: spent, reserved: reserved)
        }
        return nil
    }

    /// The user's balance; zero when the user has no row.
    static func balance(_ userID: String, on connection: PostgresConnection, logger: Logger) async throws -> Balance {
        try await balanceRow(userID, forUpdate: false, on: connection, logger: logger)
            ?? Balance(balance: 0, totalEarned: 0, totalSpent: 0)
    }

    /// The user's transaction with a key the user chose (`idempotencyKey`).
    static func transaction(
        userID: String, idempotencyKey: String, on connection: PostgresConnection, logger: Logger
    ) async throws -> LedgerTransaction? {
        try await transaction(userID: userID, keyColumn: "idempotency_key", key: idempotencyKey, on: connection, logger: logger)
    }

    /// The user's transaction with a service-made key (never one a user chose).
    static func transaction(
        userID: String, systemKey: String, on connection: PostgresConnection, logger: Logger
    ) async throws -> LedgerTransaction? {
        try await transaction(userID: userID, keyColumn: "system_key", key: systemKey, on: connection, logger: logger)
    }

    private static func transaction(
        userID: String, keyColumn: StaticString, key: String, on connection: PostgresConnection, logger: Logger
    ) async throws -> LedgerTransaction? {
        let rows = try await connection.query(
            """
            SELECT \(unescaped: LedgerTransaction.columns) FROM credits.transactions
            WHERE user_id = \(userID) AND \(unescaped: keyColumn.description) = \(key)
            """, logger: logger)
        for try await row in rows { return try LedgerTransaction(row: row) }
        return nil
    }

    static func insert(
        userID: String, type: String, amount: Int64, before: Int64, appID: String, description: String,
        metadata: JSONValue?, idempotencyKey: String?, systemKey: String? = nil, caller: String? = nil, pending: Bool = false,
        on connection: PostgresConnection, logger: Logger
    ) async throws -> LedgerTransaction {
        let status = pending ? "pending" : "completed"
        let metadataText = try metadata.map { String(decoding: try JSONEncoder().encode($0), as: UTF8.self) }
        let rows = try await connection.query(
            """
            INSERT INTO credits.transactions (user_id, type, status, amount, balance_before, balance_after, app_id,
                description, metadata, idempotency_key, system_key, caller, completed_at)
            VALUES (\(userID), \(type), \(status), \(amount), \(before), \(before + amount), \(appID), \(description),
                \(metadataText)::jsonb, \(idempotencyKey), \(systemKey), \(caller), CASE WHEN \(pending) THEN NULL ELSE clock_timestamp() END)
            RETURNING \(unescaped: LedgerTransaction.columns)
            """, logger: logger)
        for try await row in rows { return try LedgerTransaction(row: row) }
        throw APIError(.internalServerError, message: "internal server error")
    }
}
