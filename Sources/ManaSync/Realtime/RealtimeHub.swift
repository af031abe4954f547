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
    /// The shared spaces the push wrote into: their members hear of it too.
    let spaces: [String]

    init(userID: String, appID: String, tables: [String], clientID: String?, spaces: [String] = []) {
        self.userID = userID
        self.appID = appID
        self.tables = tables
        self.clientID = clientID
        self.spaces = spaces
    }
}

/// Where a WebSocket connection's messages go: its socket (``NoticeSocketHandler``'s sink), or
/// a collector in tests. Both calls may come from any thread.
protocol NoticeSink: Sendable {
    /// Queues a message; false when the connection's queue is full.
    func send(_ text: String) -> Bool
    /// Ends the connection for `why` (called once).
    func close(_ why: RealtimeHub.CloseReason)
}

/// This replica's real-time listeners: WebSocket connections (each with a bounded send queue)
/// and SSE streams. ``publish(_:)`` delivers one push notice to the listeners it concerns: the
/// author's, and those of every user here who reads a space the push wrote into (the space
/// index, kept by ``MemberFanOut``).
final class RealtimeHub: Sendable {
    /// Why the server ends a WebSocket connection.
    enum CloseReason: Sendable, Equatable {
        /// The server is shutting down (1001).
        case shutdown
        /// Its send queue overflowed or a write took too long (1008 "too slow").
        case tooSlow
        /// The user opened more connections than allowed; this was the oldest (1008).
        case replaced
        /// The token it authenticated with expired (1008).
        case expired
    }

    /// A WebSocket connection as the hub sees it: who it is for, and the sink that carries
    /// its messages (the socket's NIO handler, ``NoticeSocketHandler``).
    final class Connection: Sendable {
        let id = UUID()
        /// Order of registration, to find a user's oldest connection.
        fileprivate let sequence: UInt64
        let userID: String
        /// nil for the unified `/ws`, the app for a legacy `/ws/{appId}`.
        let appID: String?
        let clientID: String?
        /// When the token the connection authenticated with stops being valid.
        let validUntil: Date?
        private let sink: any NoticeSink
        private let reason = Mutex<CloseReason?>(nil)

        init(userID: String, appID: String?, clientID: String?, validUntil: Date? = nil, sink: any NoticeSink, sequence: UInt64 = 0) {
            self.sequence = sequence
            self.userID = userID
            self.appID = appID
            self.clientID = clientID
            self.validUntil = validUntil
            self.sink = sink
        }

        /// Why the connection was ended (the first reason given), nil while it is open.
        var closeReason: CloseReason? { reason.withLock { $0 } }

        /// Queues a message; false (and the connection is closed as too slow) when its queue
        /// is full. A closed connection takes nothing and answers true.
        func send(_ text: String) -> Bool {
            guard closeReason == nil else { return true }
            if !sink.send(text) {
                close(.tooSlow)
                return false
            }
            return true
        }

        /// Ends the connection for `why`; only the first call reaches the sink.
        func close(_ why: CloseReason = .shutdown) {
            let first = reason.withLock { reason in
                guard reason == nil else { return false }
                reason = why
                return true
            }
            if first { sink.close(why) }
        }
    }

    /// An SSE stream's subscription: the tables with news since it last looked.
    final class Subscription: Sendable {
        let id = UUID()
        fileprivate let sequence: UInt64
        let userID: String
        let appID: String
        let clientID: String?
        let tables: Set<String>
        let signal = WakeSignal()
        private let state = Mutex<(dirty: Set<String>, closed: Bool, markedAt: ContinuousClock.Instant?)>(([], false, nil))

        init(userID: String, appID: String, clientID: String?, tables: Set<String>, sequence: UInt64 = 0) {
            self.sequence = sequence
            self.userID = userID
            self.appID = appID
            self.clientID = clientID
            self.tables = tables
        }

        /// Notes news for `changed` tables, announced at `at` (after its commit).
        fileprivate func mark(_ changed: [String], at: ContinuousClock.Instant) {
            let relevant = tables.intersection(changed)
            guard !relevant.isEmpty else { return }
            state.withLock { state in
                state.dirty.formUnion(relevant)
                state.markedAt = max(state.markedAt ?? at, at)
            }
            signal.wake()
        }

        func close() {
            state.withLock { $0.closed = true }
            signal.wake()
        }

        /// The tables with news (emptied), whether the stream should end, and when the latest
        /// of that news was announced: a read that starts no earlier sees all of it.
        func take() -> (tables: Set<String>, closed: Bool, announcedAt: ContinuousClock.Instant) {
            state.withLock { state in
                defer {
                    state.dirty = []
                    state.markedAt = nil
                }
                return (state.dirty, state.closed, state.markedAt ?? .now)
            }
        }
    }

    private struct State {
        /// Connections by user, so a push costs work for that user's connections only.
        var connections: [String: [UUID: Connection]] = [:]
        var connectionCount = 0
        var subscriptions: [String: [UUID: Subscription]] = [:]
        var subscriptionCount = 0
        var sequence: UInt64 = 0
        var closed = false
        /// The spaces each user with a listener here reads, the version of that answer, and
        /// the reverse index a push into a space looks up.
        var spacesByUser: [String: (spaces: Set<String>, version: UInt64)] = [:]
        var membersBySpace: [String: Set<String>] = [:]

        func isListening(_ user: String) -> Bool { connections[user] != nil || subscriptions[user] != nil }

        /// Replaces `user`'s spaces in both indexes.
        mutating func index(_ user: String, spaces: Set<String>, version: UInt64) {
            let old = spacesByUser[user]?.spaces ?? []
            for space in old.subtracting(spaces) {
                membersBySpace[space]?.remove(user)
                if membersBySpace[space]?.isEmpty == true { membersBySpace[space] = nil }
            }
            for space in spaces.subtracting(old) { membersBySpace[space, default: []].insert(user) }
            spacesByUser[user] = (spaces, version)
        }

        /// Forgets `user`'s spaces once its last listener here is gone.
        mutating func forgetIfIdle(_ user: String) {
            guard !isListening(user), spacesByUser[user] != nil else { return }
            index(user, spaces: [], version: 0)
            spacesByUser[user] = nil
        }
    }

    private let state = Mutex(State())
    private let metrics: ServiceMetrics
    let queueLimit: Int
    /// Most WebSockets and SSE streams per user; a new one beyond ends that user's oldest.
    let connectionsPerUser: Int
    let streamsPerUser: Int

    init(metrics: ServiceMetrics, queueLimit: Int = 256, connectionsPerUser: Int = 20, streamsPerUser: Int = 10) {
        self.metrics = metrics
        self.queueLimit = queueLimit
        self.connectionsPerUser = connectionsPerUser
        self.streamsPerUser = streamsPerUser
        updateGauges()
    }

    // MARK: Registration

    /// Registers an authenticated WebSocket connection; nil once the hub is shut down. A user
    /// at the limit loses the oldest connection (closed 1008), so a token holder cannot pile up
    /// sockets that every push of theirs wakes.
    func connect(userID: String, appID: String?, clientID: String?, validUntil: Date? = nil, sink: any NoticeSink) -> Connection? {
        let (connection, evicted) = state.withLock { state -> (Connection?, Connection?) in
            guard !state.closed else { return (nil, nil) }
            state.sequence += 1
            let connection = Connection(
                userID: userID, appID: appID, clientID: clientID, validUntil: validUntil, sink: sink, sequence: state.sequence)
            let evicted = Self.removeOldest(from: &state.connections[userID, default: [:]], atLimit: connectionsPerUser, \.sequence)
            if evicted != nil { state.connectionCount -= 1 }
            state.connections[userID, default: [:]][connection.id] = connection
            state.connectionCount += 1
            return (connection, evicted)
        }
        if let evicted {
            metrics.count("sync_ws_evicted_total")
            evicted.close(.replaced)
        }
        updateGauges()
        return connection
    }

    func disconnect(_ connection: Connection, _ why: CloseReason = .shutdown) {
        state.withLock { state in
            guard state.connections[connection.userID]?.removeValue(forKey: connection.id) != nil else { return }
            state.connectionCount -= 1
            if state.connections[connection.userID]?.isEmpty == true { state.connections[connection.userID] = nil }
            state.forgetIfIdle(connection.userID)
        }
        connection.close(why)
        updateGauges()
    }

    /// Ends every connection whose token expired by `now` (1008 "token expired"). Run once
    /// a second by one sweep for the whole hub, instead of a sleeping task per socket.
    @discardableResult
    func closeExpired(now: Date = Date()) -> Int {
        let expired = state.withLock { state in
            state.connections.values.flatMap { $0.values.filter { ($0.validUntil ?? .distantFuture) <= now } }
        }
        for connection in expired { disconnect(connection, .expired) }
        return expired.count
    }

    /// Registers an SSE stream; a user at the limit loses the oldest stream (it ends).
    func subscribe(userID: String, appID: String, clientID: String?, tables: Set<String>) -> Subscription {
        let (subscription, evicted, closed) = state.withLock { state -> (Subscription, Subscription?, Bool) in
            state.sequence += 1
            let subscription = Subscription(userID: userID, appID: appID, clientID: clientID, tables: tables, sequence: state.sequence)
            let evicted = Self.removeOldest(from: &state.subscriptions[userID, default: [:]], atLimit: streamsPerUser, \.sequence)
            if evicted != nil { state.subscriptionCount -= 1 }
            state.subscriptions[userID, default: [:]][subscription.id] = subscription
            state.subscriptionCount += 1
            return (subscription, evicted, state.closed)
        }
        if let evicted {
            metrics.count("sync_sse_evicted_total")
            evicted.close()
        }
        if closed { subscription.close() }
        updateGauges()
        return subscription
    }

    /// A user's listeners at `limit`: takes out (and returns) the oldest, to make room.
    private static func removeOldest<Listener>(
        from listeners: inout [UUID: Listener], atLimit limit: Int, _ sequence: KeyPath<Listener, UInt64>
    ) -> Listener? {
        guard listeners.count >= limit, let oldest = listeners.min(by: { $0.value[keyPath: sequence] < $1.value[keyPath: sequence] })
        else { return nil }
        listeners[oldest.key] = nil
        return oldest.value
    }

    func unsubscribe(_ subscription: Subscription) {
        state.withLock { state in
            guard state.subscriptions[subscription.userID]?.removeValue(forKey: subscription.id) != nil else { return }
            state.subscriptionCount -= 1
            if state.subscriptions[subscription.userID]?.isEmpty == true { state.subscriptions[subscription.userID] = nil }
            state.forgetIfIdle(subscription.userID)
        }
        updateGauges()
    }

    // MARK: Spaces

    /// Whether `user` has a WebSocket or SSE stream here.
    func isListening(_ user: String) -> Bool { state.withLock { $0.isListening(user) } }

    /// The users with a listener here.
    var listeningUsers: [String] {
        state.withLock { state in Array(Set(state.connections.keys).union(state.subscriptions.keys)) }
    }

    /// A ticket for resolving `user`'s spaces: an answer is kept only if no answer resolved
    /// later (a higher ticket) was kept first.
    func spaceTicket() -> UInt64 {
        state.withLock { state in
            state.sequence += 1
            return state.sequence
        }
    }

    /// Sets the spaces `user` reads (``ReadScope/spaces``), as resolved with `ticket`; ignored
    /// for a user with no listener here, or when a later resolution already answered.
    func setSpaces(_ spaces: Set<String>, of user: String, ticket: UInt64) {
        state.withLock { state in
            guard state.isListening(user), ticket > state.spacesByUser[user]?.version ?? 0 else { return }
            state.index(user, spaces: spaces, version: ticket)
        }
    }

    /// The spaces this hub knows `user` reads (for tests and the fan-out's bookkeeping).
    func spaces(of user: String) -> Set<String> { state.withLock { $0.spacesByUser[user]?.spaces ?? [] } }

    // MARK: Delivery

    /// Delivers a push notice to this replica's listeners it concerns: the author's unified
    /// connections, legacy connections of that app and SSE streams of that app, never the
    /// pushing client; and the same listeners of every other user here who reads a space the
    /// push wrote into.
    func publish(_ notice: PushNotice) {
        let (connections, subscriptions, members) = state.withLock { state in
            var members: Set<String> = []
            for space in notice.spaces { members.formUnion(state.membersBySpace[space] ?? []) }
            members.remove(notice.userID)
            var connections = (state.connections[notice.userID] ?? [:]).values.filter {
                ($0.appID == nil || $0.appID == notice.appID) && ($0.clientID == nil || $0.clientID != notice.clientID)
            }
            var subscriptions = (state.subscriptions[notice.userID] ?? [:]).values.filter {
                $0.appID == notice.appID && ($0.clientID == nil || $0.clientID != notice.clientID)
            }
            for member in members {
                connections += (state.connections[member] ?? [:]).values.filter { $0.appID == nil || $0.appID == notice.appID }
                subscriptions += (state.subscriptions[member] ?? [:]).values.filter { $0.appID == notice.appID }
            }
            return (connections, subscriptions, members.count)
        }
        if !notice.spaces.isEmpty { metrics.observe("sync_space_fanout_users", value: Double(members), buckets: Self.fanOutBuckets) }
        if !connections.isEmpty {
            let message = Self.syncAvailable(appID: notice.appID, tables: notice.tables)
            for connection in connections { deliver(message, to: connection) }
        }
        if !subscriptions.isEmpty {
            let now = ContinuousClock.now
            for subscription in subscriptions { subscription.mark(notice.tables, at: now) }
        }
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
        let now = ContinuousClock.now
        for subscription in subscriptions { subscription.mark(Array(subscription.tables), at: now) }
    }

    private func deliver(_ message: String, to connection: Connection) {
        if connection.send(message) {
            metrics.count("sync_notifications_sent_total")
        } else {
            metrics.count("sync_ws_dropped_slow_total")
            disconnect(connection, .tooSlow)
        }
    }

    /// Closes every connection, stream and socket still authenticating (graceful shutdown);
    /// later ones are refused.
    func shutdown() {
        let (connections, subscriptions) = state.withLock { state in
            state.closed = true
            return (state.connections.values.flatMap(\.values), state.subscriptions.values.flatMap(\.values))
        }
        let unauthenticated = pending.withLock { pending in
            defer { pending = nil }
            return Array((pending ?? [:]).values)
        }
        for connection in connections { connection.close() }
        for subscription in subscriptions { subscription.close() }
        for close in unauthenticated { close() }
    }

    /// WebSockets not authenticated yet, each with how to close it at shutdown; nil once shut down.
    private let pending = Mutex<[ObjectIdentifier: @Sendable () -> Void]?>([:])

    /// Notes a socket that has yet to authenticate; false once the hub is shut down.
    func admit(_ socket: ObjectIdentifier, close: @escaping @Sendable () -> Void) -> Bool {
        pending.withLock { pending in
            guard pending != nil else { return false }
            pending?[socket] = close
            return true
        }
    }

    /// Forgets a socket ``admit(_:close:)`` noted (it authenticated or closed).
    func release(_ socket: ObjectIdentifier) {
        _ = pending.withLock { $0?.removeValue(forKey: socket) }
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

    /// Members told of one push into spaces, on one replica.
    static let fanOutBuckets: [Double] = [0, 1, 2, 5, 10, 25, 50, 100, 250, 1_000]

    static func syncAvailable(appID: String, tables: [String]) -> String {
        let body: JSONValue = ["type": "sync-available", "appId": .string(appID), "tables": .array(tables.map(JSONValue.string))]
        return JSONText.sorted(body)
    }
}
