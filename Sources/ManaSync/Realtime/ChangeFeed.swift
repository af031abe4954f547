import Foundation
import HTTPKit
import Logging
import PostgresNIO
import ServiceLifecycle

/// Fan-out across replicas over PostgreSQL `LISTEN/NOTIFY`.
///
/// A push is announced on the channel once its transaction committed (`PushNotifier`);
/// billing and membership invalidations are announced too. Every replica keeps one connection
/// listening and hands what it hears to its hub and billing gate. When that connection
/// drops, notifications sent meanwhile are lost: after listening again (and after the first
/// LISTEN, which may come after the first clients), the replica tells every client to pull.
struct ChangeFeed: Service {
    static let channel = "mana_sync_events"

    let client: PostgresClient
    let hub: RealtimeHub
    let gate: BillingGate
    let memberships: MembershipDirectory
    let fanOut: MemberFanOut
    let changeLog: ChangeLogRepository
    let retry: Duration
    /// This replica's tag on its push notices (``PushNotifier/replica``).
    let replica: String
    let metrics: ServiceMetrics
    let logger: Logger

    // MARK: Payloads (well under PostgreSQL's 8,000-byte limit)

    /// A push's notice: the replica that sent it, user, app, client, tables (null when the
    /// notice would be too long for NOTIFY's 8,000 bytes: listeners then tell of every table)
    /// and the spaces written. Replicas still on migration 0008's push function send a cursor
    /// range instead of a long table list.
    ///
    /// The replica comes first (`{"r":"…",`), so that the sender's own listener knows its
    /// notice by the first bytes (``ownNoticePrefix(replica:)``) and leaves it unread: that
    /// replica's clients were told when the push committed (``PushNotifier``). Replicas of
    /// the previous version read notices as objects and ignore the member.
    static func pushPayload(replica: String, userID: String, appID: String, clientID: String, tables: [String], spaces: [String]) -> String {
        func payload(tables: JSONValue) -> String {
            var out: [UInt8] = []
            out.reserveCapacity(96 + replica.utf8.count + userID.utf8.count + appID.utf8.count + clientID.utf8.count)
            appendPrefix(replica: replica, to: &out)
            out.append(contentsOf: #""k":"push","u":"#.utf8)
            JSONText.appendString(userID, to: &out)
            out.append(contentsOf: #","a":"#.utf8)
            JSONText.appendString(appID, to: &out)
            out.append(contentsOf: #","c":"#.utf8)
            JSONText.appendString(clientID, to: &out)
            out.append(contentsOf: #","t":"#.utf8)
            JSONText.append(tables, to: &out)
            out.append(contentsOf: #","s":"#.utf8)
            JSONText.append(.array(spaces.map(JSONValue.string)), to: &out)
            out.append(UInt8(ascii: "}"))
            return String(decoding: out, as: UTF8.self)
        }
        let full = payload(tables: .array(tables.map(JSONValue.string)))
        return full.utf8.count <= 7_000 ? full : payload(tables: .null)
    }

    /// The first bytes of every push notice `replica` sends.
    static func ownNoticePrefix(replica: String) -> String {
        var out: [UInt8] = []
        appendPrefix(replica: replica, to: &out)
        return String(decoding: out, as: UTF8.self)
    }

    /// `{"r":"<replica>",`: what ``pushPayload`` begins with and ``ownNoticePrefix(replica:)`` says.
    private static func appendPrefix(replica: String, to out: inout [UInt8]) {
        out.append(contentsOf: #"{"r":"#.utf8)
        JSONText.appendString(replica, to: &out)
        out.append(UInt8(ascii: ","))
    }

    static func invalidationPayload(userID: String) -> String {
        encode(["k": "billing", "u": .string(userID)])
    }

    private static func encode(_ body: [String: JSONValue]) -> String {
        JSONText.sorted(.object(body))
    }

    /// Announces membership invalidations to every replica, one notice per user.
    static func announceMembershipInvalidation(userIDs: [String], client: PostgresClient, logger: Logger) async {
        do {
            try await client.guardedExecute(
                """
                SELECT pg_notify(\(channel), json_build_object('k', 'memberships', 'u', u)::text) FROM unnest(\(userIDs)::text[]) AS u
                """, logger: logger)
        } catch {
            logger.warning("could not announce a membership invalidation to the other replicas", metadata: ["error": "\(error)"])
        }
    }

    /// Announces a billing invalidation to every replica.
    static func announceInvalidation(userID: String, client: PostgresClient, logger: Logger) async {
        do {
            try await client.guardedExecute("SELECT pg_notify(\(channel), \(invalidationPayload(userID: userID)))", logger: logger)
        } catch {
            logger.warning("could not announce a billing invalidation to the other replicas", metadata: ["error": "\(error)"])
        }
    }

    // MARK: Listening

    func run() async throws {
        await withGracefulShutdownHandler {
            await cancelWhenGracefulShutdown { await listen() }
        } onGracefulShutdown: {
            hub.shutdown()
        }
    }

    private func listen() async {
        var connectedBefore = false
        while !Task.isCancelled {
            do {
                try await client.withConnection { connection in
                    // On the connection's own event loop, where its notifications arrive.
                    try await EventLoopTaskExecutor.run(on: connection.eventLoop) {
                        try await connection.listen(on: Self.channel) { notifications in
                            if connectedBefore {
                                metrics.count("sync_listener_reconnects_total")
                                logger.notice("listening for sync notifications again; telling every client to pull")
                            }
                            // Also on the first LISTEN: a client that connected before it (the
                            // server serves once migrations are done, the listener connects
                            // beside it, later when the database is slow) may have missed a push
                            // another replica announced meanwhile. Without clients this is a no-op.
                            await hub.catchUp(apps: apps(of:))
                            // Connected from here: listening, and the clients here caught up.
                            metrics.set("sync_listener_connected", to: 1)
                            connectedBefore = true
                            let ownPrefix = Self.ownNoticePrefix(replica: replica)
                            for try await notification in notifications {
                                await handle(notification.payload, ownPrefix: ownPrefix)
                            }
                        }
                    }
                }
            } catch {
                if Task.isCancelled { break }
                logger.warning("the sync notification listener lost its connection", metadata: ["error": "\(String(reflecting: error))"])
            }
            metrics.set("sync_listener_connected", to: 0)
            try? await Task.sleep(for: retry)
        }
        metrics.set("sync_listener_connected", to: 0)
    }

    private func handle(_ payload: String, ownPrefix: String) async {
        // This replica's own push: its clients were told when it committed.
        if payload.utf8.starts(with: ownPrefix.utf8) { return }
        guard let body = try? JSONParser.parse(payload), let user = body["u"]?.stringValue else {
            logger.warning("ignoring an unreadable sync notification")
            return
        }
        switch body["k"]?.stringValue {
        case "billing":
            gate.invalidate(userID: user)
        case "memberships":
            memberships.invalidate(userIDs: [user])
            // The user's listeners here re-resolve its spaces, without holding up the channel.
            let fanOut = self.fanOut
            Task { await fanOut.refresh([user]) }
        case "push":
            guard let app = body["a"]?.stringValue else { return }
            var tables = body["t"]?.array?.compactMap(\.stringValue)
            if tables == nil, let first = body["f"]?.stringValue.flatMap(Int64.init), let last = body["l"]?.stringValue.flatMap(Int64.init) {
                tables = try? await changeLog.tables(userID: user, appID: app, cursors: first...last)
            }
            hub.publish(
                PushNotice(
                    userID: user, appID: app, tables: tables ?? [], clientID: body["c"]?.stringValue,
                    spaces: body["s"]?.array?.compactMap(\.stringValue) ?? []))
        default:
            break
        }
    }

    private func apps(of userID: String) async -> [String] {
        (try? await changeLog.apps(userID: userID)) ?? []
    }
}
