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

    /// Changes after a cursor, and the cursor the client has now seen everything up to.
    struct Page: Sendable {
        let changes: [StoredChange]
        let syncedUntil: Int64
        let hasMore: Bool
    }

    /// Stores a push's changes in one transaction and returns what other clients stored
    /// after `since` (all tables). A push whose idempotency key was seen stores nothing.
    func push(
        userID: String, appID: String, clientID: String, changes: [Change], since: Int64, idempotencyKey: String?,
        limit: Int
    ) async throws -> (page: Page, stored: Int) {
        try await withUserTransaction(userID) { connection in
            var stored = 0
            var isRetry = false
            if let idempotencyKey {
                let rows = try await connection.query(
                    """
                    INSERT INTO sync.push_receipts (user_id, app_id, client_id, idempotency_key)
                    VALUES (\(userID), \(appID), \(clientID), \(idempotencyKey)) ON CONFLICT DO NOTHING RETURNING 1
                    """, logger: logger)
                isRetry = try await rows.decode(Int.self).reduce(0, +) == 0
            }
            if !isRetry, !changes.isEmpty {
                try await connection.query(
                    "INSERT INTO sync.heads (user_id, app_id) VALUES (\(userID), \(appID)) ON CONFLICT DO NOTHING", logger: logger)
                // Lock the head and take the first cursor: after the last one, and not before now.
                let base = try await connection.query(
                    """
                    SELECT greatest((extract(epoch FROM clock_timestamp()) * 1000000)::bigint, last_cursor + 1)
                    FROM sync.heads WHERE user_id = \(userID) AND app_id = \(appID) FOR UPDATE
                    """, logger: logger
                ).decode(Int64.self).reduce(0) { $1 }
                let batch = String(decoding: try JSONEncoder().encode(JSONValue.array(changes.map(\.storageJSON))), as: UTF8.self)
                try await connection.query(
                    """
                    INSERT INTO sync.changes (user_id, app_id, cursor, table_name, record_id, op, data, fields, deleted_at, client_id, extra)
                    SELECT \(userID), \(appID), \(base) + e.ordinality - 1, e.value->>'table', e.value->>'id', e.value->>'op',
                        e.value->'data', e.value->'fields', e.value->>'deletedAt', \(clientID), e.value->'x'
                    FROM jsonb_array_elements(\(batch)::jsonb) WITH ORDINALITY AS e
                    """, logger: logger)
                let last = base + Int64(changes.count) - 1
                try await connection.query(
                    """
                    UPDATE sync.heads SET last_cursor = \(last)
                    WHERE user_id = \(userID) AND app_id = \(appID)
                    """, logger: logger)
                // Delivered to every replica's listener when (and only if) this transaction commits.
                let notice = ChangeFeed.pushPayload(
                    userID: userID, appID: appID, clientID: clientID, tables: Array(Set(changes.map(\.table))).sorted(), first: base,
                    last: last)
                try await connection.query("SELECT pg_notify(\(ChangeFeed.channel), \(notice))", logger: logger)
                stored = changes.count
            }
            let page = try await Self.page(
                connection, userID: userID, appID: appID, table: nil, since: since, excludingClient: clientID, limit: limit,
                logger: logger)
            return (page, stored)
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
                c.event_id::text, c.extra::text, c.client_id
            FROM head LEFT JOIN LATERAL (
                SELECT cursor, table_name, record_id, op, data, fields, deleted_at, event_id, extra, client_id FROM sync.changes
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
