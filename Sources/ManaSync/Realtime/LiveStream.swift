import Foundation
import HTTPKit
import NIOCore

/// One SSE stream's life after its response began: the catch-up of every listed table, then
/// a page per table with news, heartbeats, and its end when the token expires, the billing
/// gate says the subscription stopped, the hub closes it, or the client goes away.
struct LiveStream: Sendable {
    let changeLog: ChangeLogRepository
    let gate: BillingGate
    let memberships: MembershipDirectory
    let shared: SharedReads
    let metrics: ServiceMetrics
    let settings: RealtimeSettings
    let userID: String
    let appID: String
    let clientID: String?
    let validUntil: Date?

    func run(
        subscription: RealtimeHub.Subscription, tables: [String], since: Int64,
        write: (ByteBuffer) async throws -> Void
    ) async throws {
        var cursors = Dictionary(uniqueKeysWithValues: tables.map { ($0, since) })
        // The catch-up reads from the stream's own cursor, leaving out its client in SQL.
        for table in tables {
            try await send(table, catchUp: true, cursors: &cursors, write: write) { since in
                if let page = try await memberPage(table: table, since: since, excludingClient: clientID) { return page }
                return Self.event(
                    try await changeLog.pull(
                        userID: userID, appID: appID, table: table, since: since, excludingClient: clientID, limit: StreamController.pageSize),
                    table: table)
            }
        }
        let clock = ContinuousClock()
        var lastWrite = clock.now
        var nextCheck = clock.now + settings.streamRecheck
        let end = validUntil.map { clock.now + .seconds(max(0, $0.timeIntervalSinceNow)) }
        while true {
            var wait = min(settings.heartbeat - (clock.now - lastWrite), nextCheck - clock.now)
            if let end { wait = min(wait, end - clock.now) }
            await subscription.signal.wait(upTo: max(wait, .zero))
            let (dirty, closed, announcedAt) = subscription.take()
            if closed || Task.isCancelled { return }
            if let end, clock.now >= end {
                metrics.count("sync_sse_closed_total", [("reason", "token_expired")])
                return
            }
            if clock.now >= nextCheck {
                // Throws 402 when the subscription stopped: the stream ends.
                try await gate.check(userID: userID)
                nextCheck = clock.now + settings.streamRecheck
            }
            for table in dirty.sorted() {
                // Live pages are shared by the user's streams that are at the same cursor.
                try await send(table, cursors: &cursors, write: write) { since in
                    if let page = try await memberPage(table: table, since: since, excludingClient: clientID) { return page }
                    let (page, wasShared) = try await shared.page(
                        .init(userID: userID, appID: appID, table: table, since: since), notBefore: announcedAt
                    ) {
                        try await changeLog.pull(
                            userID: userID, appID: appID, table: table, since: since, excludingClient: nil, limit: StreamController.pageSize)
                    }
                    metrics.count("sync_sse_reads_total", [("shared", wasShared ? "true" : "false")])
                    return Self.event(
                        ChangeLogRepository.Page(
                            changes: page.changes.filter { clientID == nil || $0.clientID != clientID }, syncedUntil: page.syncedUntil,
                            hasMore: page.hasMore),
                        table: table)
                }
                lastWrite = clock.now
            }
            if clock.now - lastWrite >= settings.heartbeat {
                try await write(StreamController.event("heartbeat", [:]))
                lastWrite = clock.now
            }
        }
    }

    /// One page as an SSE `changes` event, with what the loop needs to know about it.
    struct EventPage {
        let event: [UInt8]
        let count: Int
        let syncedUntil: Int64
        let hasMore: Bool
    }

    static func event(_ page: ChangeLogRepository.Page, table: String) -> EventPage {
        EventPage(
            event: StoredChange.eventJSON(page.changes, table: table, syncedUntil: page.syncedUntil, hasMore: page.hasMore),
            count: page.changes.count, syncedUntil: page.syncedUntil, hasMore: page.hasMore)
    }

    /// A member's page (own rows and its spaces', with the memberships of this moment), or nil
    /// when the user reads own rows only. While memberships cannot be resolved: own rows, and
    /// the cursor stays.
    private func memberPage(table: String, since: Int64, excludingClient: String?) async throws -> EventPage? {
        let scope = ReadScope(await memberships.lookup(userID: userID))
        switch scope {
        case .own:
            return nil
        case .degraded:
            let page = try await changeLog.pull(
                userID: userID, appID: appID, table: table, since: since, excludingClient: excludingClient, limit: StreamController.pageSize)
            return Self.event(ChangeLogRepository.Page(changes: page.changes, syncedUntil: since, hasMore: false), table: table)
        case .spaces(let spaces):
            let page = try await changeLog.pullText(
                userID: userID, appID: appID, table: table, since: since, excludingClient: excludingClient,
                limit: StreamController.pageSize, spaces: spaces)
            return EventPage(
                event: StoredChange.eventJSON(page, table: table), count: page.count, syncedUntil: page.syncedUntil, hasMore: page.hasMore)
        }
    }

    /// Writes `table`'s pages after its cursor until none is full; during the catch-up even
    /// an empty page is written (the client learns the cursor), live only pages with changes.
    private func send(
        _ table: String, catchUp: Bool = false, cursors: inout [String: Int64], write: (ByteBuffer) async throws -> Void,
        read: (Int64) async throws -> EventPage
    ) async throws {
        while true {
            let page = try await read(cursors[table] ?? 0)
            cursors[table] = page.syncedUntil
            if catchUp || page.count > 0 {
                try await write(StreamController.event("changes", rawJSON: page.event))
            }
            if !page.hasMore { return }
        }
    }
}
