import HTTPKit

/// WebSocket and SSE limits.
struct RealtimeSettings: Sendable {
    /// Time a WebSocket has to send its auth message after the upgrade.
    var authTimeout: Duration = .seconds(10)
    /// Time between SSE heartbeats.
    var heartbeat: Duration = .seconds(30)
    /// Messages queued for one WebSocket before it counts as too slow and is dropped.
    var queueLimit = 256
    /// Longest a single WebSocket write may take before the connection is dropped.
    var writeTimeout: Duration = .seconds(10)
    /// Time between the server's WebSocket pings; a peer that has not answered one by the next
    /// is gone, and its connection is closed (1001 "ping timeout").
    var pingInterval: Duration = .seconds(30)
    /// Pause before the LISTEN connection is re-established after it dropped.
    var listenerRetry: Duration = .seconds(1)
    /// Most WebSockets one user may hold on this replica; a new one closes the oldest (1008).
    var webSocketsPerUser = 20
    /// Most SSE streams one user may hold on this replica; a new one ends the oldest.
    var streamsPerUser = 10
    /// How often an open SSE stream asks the billing gate again (it ends when inactive).
    var streamRecheck: Duration = .seconds(300)

    enum Variables {
        static let authTimeout = EnvironmentVariable(
            "SYNC_WS_AUTH_TIMEOUT", default: "10", help: "seconds a WebSocket has to authenticate before it is closed (1008)")
        static let heartbeat = EnvironmentVariable("SYNC_SSE_HEARTBEAT", default: "30", help: "seconds between SSE heartbeats")
        static let queueLimit = EnvironmentVariable(
            "SYNC_WS_QUEUE_LIMIT", default: "256", help: "messages queued for one WebSocket before it is dropped as too slow")
        static let webSocketsPerUser = EnvironmentVariable(
            "SYNC_WS_PER_USER", default: "20", help: "WebSockets one user may hold per replica; a new one closes the oldest (1008)")
        static let streamsPerUser = EnvironmentVariable(
            "SYNC_SSE_PER_USER", default: "10", help: "SSE streams one user may hold per replica; a new one ends the oldest")
        static let streamRecheck = EnvironmentVariable(
            "SYNC_SSE_RECHECK", default: "300", help: "seconds between billing-gate checks of an open SSE stream")
        static let all = [authTimeout, heartbeat, queueLimit, webSocketsPerUser, streamsPerUser, streamRecheck]
    }

    init() {}

    init(reading reader: inout ConfigReader) {
        authTimeout = reader.seconds(Variables.authTimeout, in: 0.1...300)
        heartbeat = reader.seconds(Variables.heartbeat, in: 0.1...3_600)
        queueLimit = reader.int(Variables.queueLimit, in: 1...100_000)
        webSocketsPerUser = reader.int(Variables.webSocketsPerUser, in: 1...10_000)
        streamsPerUser = reader.int(Variables.streamsPerUser, in: 1...10_000)
        streamRecheck = reader.seconds(Variables.streamRecheck, in: 1...86_400)
    }
}
