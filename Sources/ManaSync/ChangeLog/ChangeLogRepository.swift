import Foundation
import HTTPKit
import Logging
import PostgresNIO

/// The change log in PostgreSQL: storing pushes and reading pages of changes.
///
/// Every transaction first sets `mana.user_id` (and, where the migration made it, switches
/// to the `mana_sync_rls` role), so row-level security confines it to that user's rows.
struct ChangeLogRepository: Sendable {
    let client: PostgresClient
    let logger: Logger
    /// Pushes of own rows that arrive while PostgreSQL is busy go to it together (`sync.push_rows`).
    let batches: StatementBatches<OwnPush, PushOutcome>

    /// A push's answer page and how many changes it stored.
    typealias PushOutcome = (page: PageText, stored: Int)

    /// A push of own rows (no shared space written or read): what may go in a batch.
    struct OwnPush: Sendable {
        let userID: String
        let appID: String
        let clientID: String
        let idempotencyKey: String?
        let rows: PushRows
        let since: Int64
        let limit: Int
    }

    /// - Parameters:
    ///   - lanes: push statements at once (`SYNC_PUSH_LANES`); pushes arriving meanwhile go together.
    ///   - batched: told of each batch of pushes PostgreSQL answered: its size, and whether it refused it (metrics).
    init(
        client: PostgresClient, logger: Logger, lanes: Int = PushLimits().lanes,
        batched: @escaping @Sendable (_ size: Int, _ refused: Bool) -> Void = { _, _ in }
    ) {
        self.client = client
        self.logger = logger
        batches = StatementBatches(
            settings: .init(lanes: lanes), size: { $0.rows.bytes },
            precedes: { ($0.userID, $0.appID) < ($1.userID, $1.appID) },
            alone: { push in try await Self.push(rows: [push], asBatch: false, client: client, logger: logger)[0] },
            together: { try await Self.push(rows: $0, asBatch: true, client: client, logger: logger) },
            batched: batched)
    }

    /// Changes after a cursor, and the cursor the client has now seen everything up to.
    struct Page: Sendable {
        let changes: [StoredChange]
        let syncedUntil: Int64
        let hasMore: Bool
    }

    /// A page as PostgreSQL built it: the changes array as JSON text, written to the client
    /// without touching a row.
    struct PageText: Sendable {
        /// `[{...},{...}]`, each change in the shape it came in, with its `eventId`: the bytes
        /// PostgreSQL sent (UTF-8, as the database's encoding), not copied into a String.
        let changes: ByteBuffer
        let count: Int
        let syncedUntil: Int64
        let hasMore: Bool
    }

    /// Messages above this size (bytes) retire their connection after use
    /// (``PostgresClient/withGuardedConnection(retire:_:)``): at most this much send buffer
    /// stays behind per pooled connection.
    static let largeMessage = 256 * 1024

    /// Stores a push's changes (of `tables`) and returns what other clients stored after
    /// `since` (all tables), in one round trip: `sync.push_spaces` runs the receipt, the head
    /// locks and advance, the insert with each change's served text and the answer page as one
    /// transaction (migration 0012; the caller announces the push after it). A push whose idempotency key was seen
    /// stores nothing. A push of own rows goes as columns (`sync.push_rows`, migration 0017), the
    /// same push; when it finds every push lane busy it goes in the next batch
    /// (``StatementBatches``), with the same outcome.
    func push(
        userID: String, appID: String, clientID: String, changes: [Change], tables: [String], since: Int64, idempotencyKey: String?,
        limit: Int, writeSpaces: [String] = [], readSpaces: [String] = []
    ) async throws -> PushOutcome {
        if writeSpaces.isEmpty, readSpaces.isEmpty {
            return try await push(
                OwnPush(
                    userID: userID, appID: appID, clientID: clientID, idempotencyKey: idempotencyKey, rows: PushRows(changes), since: since,
                    limit: limit))
        }
        // The heads of the spaces written and read are locked and read too (migration 0008).
        return try await Self.push(
            PushStatement(
                userID: userID, appID: appID, clientID: clientID, idempotencyKey: idempotencyKey,
                batch: JSONTextParameter(Change.storageJSON(changes, capacity: 256 * changes.count)), count: changes.count,
                tables: tables, since: since, limit: limit, writeSpaces: writeSpaces, readSpaces: readSpaces),
            client: client, logger: logger)
    }

    /// A push of own rows: it may wait to go with others (``StatementBatches``).
    func push(_ push: OwnPush) async throws -> PushOutcome {
        if batches.admits(push) { return try await batches.run(push) }
        return try await Self.push(rows: [push], asBatch: false, client: client, logger: logger)[0]
    }

    /// One push in its own transaction.
    static func push(_ statement: PushStatement, client: PostgresClient, logger: Logger) async throws -> PushOutcome {
        // A large batch grows the connection's send buffer for good: close it after use.
        let large = statement.batch.bytes.count > Self.largeMessage
        return try await client.withGuardedConnection(retire: { _ in large }) { connection in
            do {
                for try await (stored, text, count, syncedUntil, hasMore) in try await connection.execute(statement, logger: logger) {
                    return (PageText(changes: text, count: count, syncedUntil: syncedUntil, hasMore: hasMore), stored)
                }
            } catch let error as PSQLError where error.serverInfo?[.sqlState] == "MS409" {
                // sync.push_spaces (migration 0008): the first change of the batch moving its record to another space.
                throw SpaceAuthorization.RecordMoved(
                    index: Int(error.serverInfo?[.message] ?? "") ?? -1, recorded: error.serverInfo?[.detail] ?? "")
            }
            throw DatabaseConnectionLost()
        }
    }

    /// Pushes of own rows, ordered by (user, app), in one transaction (`sync.push_rows`,
    /// migration 0017): their outcomes in the same order. `asBatch`: PostgreSQL's refusal is
    /// the batch's (``refusedAsBatch(_:)``: each push is then run alone), not a push's own error.
    static func push(rows pushes: [OwnPush], asBatch: Bool, client: PostgresClient, logger: Logger) async throws -> [PushOutcome] {
        // A large batch grows the connection's send buffer for good: close it after use.
        let large = pushes.reduce(0) { $0 + $1.rows.bytes } > Self.largeMessage
        return try await client.withGuardedConnection(retire: { _ in large }) { connection in
            var outcomes: [PushOutcome] = []
            outcomes.reserveCapacity(pushes.count)
            func run() async throws {
                for try await (n, stored, text, count, syncedUntil, hasMore) in try await connection.execute(
                    PushRowsStatement(pushes: pushes), logger: logger)
                {
                    guard n == outcomes.count + 1 else { throw DatabaseConnectionLost() }
                    outcomes.append((PageText(changes: text, count: count, syncedUntil: syncedUntil, hasMore: hasMore), stored))
                }
            }
            if asBatch { try await refusedAsBatch(run) } else { try await run() }
            guard outcomes.count == pushes.count else { throw DatabaseConnectionLost() }
            return outcomes
        }
    }

    /// Pushes without spaces in one call of `sync.push_rows`, prepared once per connection: per
    /// push its values in parallel arrays, and the rows of all of them one column per array.
    struct PushRowsStatement: PostgresPreparedStatement {
        static let sql = """
            SELECT n, stored, changes, returned, synced_until, has_more FROM sync.push_rows(
                $1::text[], $2::text[], $3::text[], $4::text[], $5::int[], $6::bigint[], $7::int[],
                $8::text[], $9::text[], $10::text[], $11::text[], $12::text[], $13::text[], $14::text[], $15::text[], $16::text[],
                $17::text[])
            """
        typealias Row = (Int, Int, ByteBuffer, Int, Int64, Bool)

        let pushes: [OwnPush]

        func makeBindings() throws -> PostgresBindings {
            var bindings = PostgresBindings(capacity: 17)
            bindings.append(pushes.map(\.userID))
            bindings.append(pushes.map(\.appID))
            bindings.append(pushes.map(\.clientID))
            bindings.append(pushes.map { $0.idempotencyKey ?? "" })
            bindings.append(pushes.map(\.rows.count))
            bindings.append(pushes.map(\.since))
            bindings.append(pushes.map(\.limit))
            var rows = pushes[0].rows
            for push in pushes.dropFirst() { rows.append(contentsOf: push.rows) }
            for column in rows.columns { bindings.append(column) }
            return bindings
        }

        func decodeRow(_ row: PostgresRow) throws -> Row { try row.decode(Row.self) }
    }

    /// A push that writes or reads shared spaces (`sync.push_spaces`), prepared once per
    /// connection: a push sends only its values (Bind, Execute), and PostgreSQL neither parses
    /// nor plans the statement again.
    struct PushStatement: PostgresPreparedStatement {
        static let sql = """
            SELECT stored, changes, returned, synced_until, has_more FROM sync.push_spaces(
                $1::text, $2::text, $3::text, $4::text, $5::jsonb, $6::int, $7::text[], $8::bigint, $9::int, $10::text[], $11::text[])
            """
        typealias Row = (Int, ByteBuffer, Int, Int64, Bool)

        let userID: String
        let appID: String
        let clientID: String
        let idempotencyKey: String?
        let batch: JSONTextParameter
        let count: Int
        let tables: [String]
        let since: Int64
        let limit: Int
        let writeSpaces: [String]
        let readSpaces: [String]

        func makeBindings() throws -> PostgresBindings {
            var bindings = PostgresBindings(capacity: 11)
            bindings.append(userID)
            bindings.append(appID)
            bindings.append(clientID)
            bindings.append(idempotencyKey)
            bindings.append(batch)
            bindings.append(count)
            bindings.append(tables)
            bindings.append(since)
            bindings.append(limit)
            bindings.append(writeSpaces)
            bindings.append(readSpaces)
            return bindings
        }

        func decodeRow(_ row: PostgresRow) throws -> Row { try row.decode(Row.self) }
    }

    /// A pull of own rows, prepared once per connection (as ``PushStatement``).
    struct PullStatement: PostgresPreparedStatement {
        static let sql = """
            SELECT changes, returned, synced_until, has_more FROM sync.pull($1::text, $2::text, $3::text, $4::bigint, $5::text, $6::int)
            """
        typealias Row = (ByteBuffer, Int, Int64, Bool)

        let userID: String
        let appID: String
        let table: String
        let since: Int64
        let excludingClient: String?
        let limit: Int

        func makeBindings() throws -> PostgresBindings {
            var bindings = PostgresBindings(capacity: 6)
            bindings.append(userID)
            bindings.append(appID)
            bindings.append(table)
            bindings.append(since)
            bindings.append(excludingClient)
            bindings.append(limit)
            return bindings
        }

        func decodeRow(_ row: PostgresRow) throws -> Row { try row.decode(Row.self) }
    }

    /// One page of a table's changes after `since` as PostgreSQL's JSON text, in one round
    /// trip: own rows, and for a member also the rows of `spaces` (`sync.pull_spaces` locks the
    /// heads it reads first, migration 0008).
    func pullText(
        userID: String, appID: String, table: String, since: Int64, excludingClient: String?, limit: Int, spaces: [String] = []
    ) async throws -> PageText {
        let logger = self.logger
        return try await client.withGuardedConnection { connection in
            if spaces.isEmpty {
                let statement = PullStatement(userID: userID, appID: appID, table: table, since: since, excludingClient: excludingClient, limit: limit)
                return try await Self.firstPage(try await connection.execute(statement, logger: logger))
            }
            let rows = try await connection.query(
                """
                SELECT changes, returned, synced_until, has_more
                FROM sync.pull_spaces(\(userID)::text, \(appID)::text, \(table)::text, \(since)::bigint, \(excludingClient)::text,
                    \(limit)::int, \(spaces)::text[])
                """, logger: logger)
            return try await Self.firstPage(rows.decode(PullStatement.Row.self))
        }
    }

    /// The one row of a page function (`changes, returned, synced_until, has_more`).
    private static func firstPage(_ rows: some AsyncSequence<PullStatement.Row, any Error>) async throws -> PageText {
        for try await (text, count, syncedUntil, hasMore) in rows {
            return PageText(changes: text, count: count, syncedUntil: syncedUntil, hasMore: hasMore)
        }
        throw DatabaseConnectionLost()
    }

    /// The next `rows` changes of a user's own log after `since` (every table and client), for
    /// ``LogSegments``: one statement (`sync.log_segment`, migration 0014), one snapshot.
    func segment(userID: String, appID: String, since: Int64, rows: Int) async throws -> LogSegments.Segment {
        let logger = self.logger
        return try await client.withGuardedConnection { connection in
            var builder = LogSegments.Segment.Builder(from: since, capacity: rows)
            let result = try await connection.query(
                "SELECT at, table_name, client_id, served FROM sync.log_segment(\(userID)::text, \(appID)::text, \(since)::bigint, \(rows)::int)",
                logger: logger)
            for try await (cursor, table, clientID, text) in result.decode((Int64, String, String, ByteBuffer).self) {
                guard builder.append(cursor: cursor, table: table, client: clientID, text: text) else { break }
            }
            return builder.build()
        }
    }

    /// One page of a table's changes after `since`, optionally without one client's own.
    func pull(userID: String, appID: String, table: String?, since: Int64, excludingClient: String?, limit: Int) async throws -> Page {
        try await withUserTransaction(userID) { connection in
            try await Self.page(
                connection, userID: userID, appID: appID, table: table, since: since, excludingClient: excludingClient,
                limit: limit, logger: logger)
        }
    }

    /// Reads the page and the head cursor in one statement, so both come from one snapshot:
    /// `syncedUntil` never passes a change that was not yet visible.
    static func page(
        _ connection: PostgresConnection, userID: String, appID: String, table: String?, since: Int64,
        excludingClient: String?, limit: Int, logger: Logger
    ) async throws -> Page {
        let rows = try await connection.query(
            """
            WITH head AS (
                SELECT coalesce((SELECT last_cursor FROM sync.heads WHERE user_id = \(userID) AND app_id = \(appID)), 0) AS cursor
            )
            SELECT head.cursor, c.cursor, c.table_name, c.record_id, c.op, c.data::text, c.fields::text, c.deleted_at,
                c.event_id::text, sync.extra_out(c.space_id, c.extra)::text, c.client_id
            FROM head LEFT JOIN LATERAL (
                SELECT cursor, table_name, record_id, op, data, fields, deleted_at, event_id, extra, space_id, client_id FROM sync.changes
                WHERE user_id = \(userID) AND app_id = \(appID) AND cursor > \(since)
                    AND (\(table)::text IS NULL OR table_name = \(table))
                    AND (\(excludingClient)::text IS NULL OR client_id <> \(excludingClient))
                ORDER BY cursor LIMIT \(limit + 1)
            ) c ON true
            ORDER BY c.cursor
            """, logger: logger)
        var head: Int64 = 0
        var changes: [(Int64, StoredChange)] = []
        for try await (headCursor, cursor, table, id, op, data, fields, deletedAt, eventID, extra, clientID) in rows.decode(
            (Int64, Int64?, String?, String?, String?, String?, String?, String?, String?, String?, String?).self)
        {
            head = headCursor
            guard let cursor, let table, let id, let op = op.flatMap(Change.Operation.init(rawValue:)), let eventID else { continue }
            changes.append(
                (cursor, StoredChange(
                    table: table, id: id, op: op, data: data, fields: fields, deletedAt: deletedAt, eventID: eventID, extra: extra,
                    clientID: clientID)))
        }
        if changes.count > limit {
            let page = changes.prefix(limit)
            return Page(changes: page.map(\.1), syncedUntil: page.last!.0, hasMore: true)
        }
        return Page(changes: changes.map(\.1), syncedUntil: head, hasMore: false)
    }

    /// The tables a user's app changed within a cursor range (for push notices too large to list them).
    func tables(userID: String, appID: String, cursors: ClosedRange<Int64>) async throws -> [String] {
        try await withUserTransaction(userID) { connection in
            try await connection.query(
                """
                SELECT DISTINCT table_name FROM sync.changes
                WHERE user_id = \(userID) AND app_id = \(appID) AND cursor BETWEEN \(cursors.lowerBound) AND \(cursors.upperBound)
                ORDER BY table_name
                """, logger: logger
            ).decode(String.self).reduce(into: []) { $0.append($1) }
        }
    }

    /// The apps a user has stored changes for.
    func apps(userID: String) async throws -> [String] {
        try await withUserTransaction(userID) { connection in
            try await connection.query(
                "SELECT app_id FROM sync.heads WHERE user_id = \(userID) ORDER BY app_id", logger: logger
            ).decode(String.self).reduce(into: []) { $0.append($1) }
        }
    }

    /// Runs `body` in a transaction confined to `userID` by row-level security.
    func withUserTransaction<T: Sendable>(_ userID: String, _ body: @escaping @Sendable (PostgresConnection) async throws -> T) async throws -> T {
        try await client.withGuardedTransaction(logger: logger) { connection in
            try await connection.query(
                """
                SELECT set_config('mana.user_id', \(userID), true),
                    (SELECT set_config('role', 'mana_sync_rls', true) WHERE CASE
                        WHEN EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'mana_sync_rls')
                        THEN pg_has_role('mana_sync_rls', 'MEMBER') ELSE false END)
                """, logger: logger)
            return try await body(connection)
        }
    }
}
