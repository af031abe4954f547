import Foundation
import HTTPKit
import Synchronization

/// A committed push, as announced to every replica.
struct PushNotice: Sendable, Equatable {
    let userID: String
    let appID: String
    let tables: [String]
    /// The pushing client, which is not told about its own push.
    let clientID: String?
}

/// This replica's real-time listeners: WebSocket connections (each with a bounded send queue)
/// and SSE streams. ``publish(_:)`` delivers one push notice to the listeners it concerns.
final class RealtimeHub: Sendable {
    /// A WebSocket connection's end of its send queue.
    final class Connection: Sendable {
        let id = UUID()
        let userID: String
        /// nil for the unified `/ws`, the app for a legacy `/ws/{appId}`.
        let appID: String?
        let clientID: String?
        let outbox: AsyncStream<String>
        fileprivate let continuation: AsyncStream<String>.Continuation
        private let dropped = Mutex(false)

        init(userID: String, appID: String?, clientID: String?, queueLimit: Int) {
            self.userID = userID
            self.appID = appID
            self.clientID = clientID
            (outbox, continuation) = AsyncStream.makeStream(bufferingPolicy: .bufferingOldest(queueLimit))
        }

        /// Whether the connection was dropped for not keeping up.
        var wasDropped: Bool { dropped.withLock { $0 } }

        /// Queues a message; false (and the queue is closed) when it is full.
        func send(_ text: String) -> Bool {
            if case .dropped = continuation.yield(text) {
                dropped.withLock { $0 = true }
                continuation.finish()
                return false
            }
            return true
        }

        /// Ends the send queue; the connection's writer then closes it.
        func close() { continuation.finish() }
    }

    /// An SSE stream's subscription: the tables with news since it last looked.
    final class Subscription: Sendable {
        let id = UUID()
        let userID: String
        let appID: String
        let clientID: String?
        let tables: Set<String>
        let signal = WakeSignal()
        private let state = Mutex<(dirty: Set<String>, closed: Bool)>(([], false))

        init(userID: String, appID: String, clientID: String?, tables: Set<String>) {
            self.userID = userID
            self.appID = appID
            self.clientID = clientID
            self.tables = tables
        }

        fileprivate func mark(_ changed: [String]) {
            let relevant = tables.intersection(changed)
            guard !relevant.isEmpty else { return }
            state.withLock { $0.dirty.formUnion(relevant) }
            signal.wake()
        }

        func close() {
            state.withLock { $0.closed = true }
            signal.wake()
        }

        /// The tables with news (emptied), and whether the stream should end.
        func take() -> (tables: Set<String>, closed: Bool) {
            state.withLock { state in
                defer { state.dirty = [] }
                return (state.dirty, state.closed)
            }
        }
    }

    private struct State {
        /// Connections by user, so a push costs work for that user's connections only.
        var connections: [String: [UUID: Connection]] = [:]
        var connectionCount = 0
        var subscriptions: [String: [UUID: Subscription]] = [:]
        var subscriptionCount = 0
        var closed = false
    }

    private let state = Mutex(State())
    private let metrics: ServiceMetrics
    let queueLimit: Int

    init(metrics: ServiceMetrics, queueLimit: Int = 256) {
        self.metrics = metrics
        self.queueLimit = queueLimit
        updateGauges()
    }

    // MARK: Registration

    /// Registers an authenticated WebSocket connection; nil once the hub is shut down.
    func connect(userID: String, appID: String?, clientID: String?) -> Connection? {
        let connection = Connection(userID: userID, appID: appID, clientID: clientID, queueLimit: queueLimit)
        let accepted = state.withLock { state -> Bool in
            guard !state.closed else { return false }
            state.connections[userID, default: [:]][connection.id] = connection
            state.connectionCount += 1
            return true
        }
        updateGauges()
        return accepted ? connection : nil
    }

    func disconnect(_ connection: Connection) {
        state.withLock { state in
            guard state.connections[connection.userID]?.removeValue(forKey: connection.id) != nil else { return }
            state.connectionCount -= 1
            if state.connections[connection.userID]?.isEmpty == true { state.connections[connection.userID] = nil }
        }
        connection.close()
        updateGauges()
    }

    func subscribe(userID: String, appID: String, clientID: String?, tables: Set<String>) -> Subscription {
        let subscription = Subscription(userID: userID, appID: appID, clientID: clientID, tables: tables)
        let closed = state.withLock { state -> Bool in
            state.subscriptions[userID, default: [:]][subscription.id] = subscription
            state.subscriptionCount += 1
            return state.closed
        }
        if closed { subscription.close() }
        updateGauges()
        return subscription
    }

    func unsubscribe(_ subscription: Subscription) {
        state.withLock { state in
            guard state.subscriptions[subscription.userID]?.removeValue(forKey: subscription.id) != nil else { return }
            state.subscriptionCount -= 1
            if state.subscriptions[subscription.userID]?.isEmpty == true { state.subscriptions[subscription.userID] = nil }
        }
        updateGauges()
    }

    // MARK: Delivery

    /// Delivers a push notice to this replica's listeners of that user: unified connections,
    /// legacy connections of that app, SSE streams of that app, never the pushing client.
    func publish(_ notice: PushNotice) {
        let (connections, subscriptions) = state.withLock { state in
            (
                (state.connections[notice.userID] ?? [:]).values.filter {
                    ($0.appID == nil || $0.appID == notice.appID)
                        && ($0.clientID == nil || $0.clientID != notice.clientID)
                },
                (state.subscriptions[notice.userID] ?? [:]).values.filter {
                    $0.appID == notice.appID && ($0.clientID == nil || $0.clientID != notice.clientID)
                }
            )
        }
        let message = Self.syncAvailable(appID: notice.appID, tables: notice.tables)
        for connection in connections { deliver(message, to: connection) }
        for subscription in subscriptions { subscription.mark(notice.tables) }
    }

    /// After the listener lost notifications: tells every connection to pull, one
    /// `sync-available` per app (`apps(user)` lists a user's apps, for unified connections),
    /// and every SSE stream to look at all its tables.
    func catchUp(apps: (String) async -> [String]) async {
        let (connections, subscriptions) = state.withLock { state in
            (state.connections.values.flatMap(\.values), state.subscriptions.values.flatMap(\.values))
        }
        var appsByUser: [String: [String]] = [:]
        for connection in connections {
            if let appID = connection.appID {
                deliver(Self.syncAvailable(appID: appID, tables: []), to: connection)
                continue
            }
            if appsByUser[connection.userID] == nil { appsByUser[connection.userID] = await apps(connection.userID) }
            for appID in appsByUser[connection.userID] ?? [] {
                deliver(Self.syncAvailable(appID: appID, tables: []), to: connection)
            }
        }
        for subscription in subscriptions { subscription.mark(Array(subscription.tables)) }
    }

    private func deliver(_ message: String, to connection: Connection) {
        if connection.send(message) {
            metrics.count("sync_notifications_sent_total")
        } else {
            metrics.count("sync_ws_dropped_slow_total")
            disconnect(connection)
        }
    }

    /// Closes every connection and stream (graceful shutdown); later ones are refused.
    func shutdown() {
        let (connections, subscriptions) = state.withLock { state in
            state.closed = true
            return (state.connections.values.flatMap(\.values), state.subscriptions.values.flatMap(\.values))
        }
        for connection in connections { connection.close() }
        for subscription in subscriptions { subscription.close() }
    }

    // MARK: Counts

    /// Open WebSocket connections and the distinct users behind them.
    var counts: (connections: Int, users: Int, streams: Int) {
        state.withLock { state in
            (state.connectionCount, state.connections.count, state.subscriptionCount)
        }
    }

    private func updateGauges() {
        let (connections, users, streams) = counts
        metrics.set("sync_ws_connections", to: Double(connections))
        metrics.set("sync_ws_users", to: Double(users))
        metrics.set("sync_sse_streams", to: Double(streams))
        // The original server's names, so existing dashboards keep working.
        metrics.set("mana_sync_connections_total", to: Double(connections))
        metrics.set("mana_sync_users_connected", to: Double(users))
    }

    static func syncAvailable(appID: String, tables: [String]) -> String {
        let body: JSONValue = ["type": "sync-available", "appId": .string(appID), "tables": .array(tables.map(JSONValue.string))]
        return String(decoding: (try? JSONEncoder.sortedKeys.encode(body)) ?? Data(), as: UTF8.self)
    }
}
