import Foundation
import HTTPKit
import Logging
import NIOCore
import NIOWebSocket
import ServiceLifecycle
import SharedAuth
import Synchronization

/// `GET /ws` (unified: every app of the user) and `GET /ws/{appId}` (legacy: that app).
///
/// The first message must be `{"type":"auth","token":...,"clientId"?}` within the auth
/// timeout; a bad token gets `{"type":"error"}` and close 1008. Afterwards the server sends
/// `sync-available` notices through the connection's bounded queue, answers `ping` with
/// `pong` and ignores everything else. Frames over 64 KB close the connection.
///
/// Each socket is a NIO handler (``NoticeSocketHandler``) on its channel, with no Swift task
/// of its own once authenticated: an idle socket costs its channel and a few small objects,
/// not the suspended frames of a task per connection (docs/benchmarks.md, session 34).
struct WebSocketController: Sendable {
    let hub: RealtimeHub
    let fanOut: MemberFanOut
    let verifier: TokenVerifier
    let settings: RealtimeSettings
    let metrics: ServiceMetrics
    /// Sockets whose channel is open, upgraded and not yet closed: what a shutdown waits for.
    let live = SocketCount()

    static let maximumMessage = 64 * 1024
    /// Time the peer has to answer the server's close frame before the channel is closed.
    static let closeTimeout: Duration = .seconds(5)

    final class SocketCount: Sendable {
        private let count = Atomic(0)
        func add(_ delta: Int) { count.add(delta, ordering: .relaxed) }
        var value: Int { count.load(ordering: .relaxed) }
    }

    /// The app of a WebSocket path: `.some(nil)` for `/ws`, `.some(app)` for a valid
    /// `/ws/{appId}`, nil for anything else (no upgrade).
    static func route(_ uri: String) -> String?? {
        let path = uri.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
        let parts = path.split(separator: "/", omittingEmptySubsequences: true)
        guard parts.first == "ws" else { return nil }
        switch parts.count {
        case 1: return .some(nil)
        case 2:
            let app = String(parts[1])
            return (try? SyncRequest.validAppID(app)) == nil ? nil : .some(app)
        default: return nil
        }
    }

    /// What came of an auth message.
    enum Admission: Sendable {
        case accepted(RealtimeHub.Connection)
        /// Answer `{"type":"error","message":...}` and close 1008.
        case refused(message: String)
        /// The hub is shut down: close 1001.
        case shuttingDown
    }

    /// Checks an auth message and registers the connection, its messages going to `sink`.
    func authenticate(_ json: JSONValue?, appID: String?, sink: any NoticeSink) async -> Admission {
        func refuse(_ message: String, reason: String) -> Admission {
            metrics.count("sync_ws_auth_failures_total", [("reason", reason)])
            return .refused(message: message)
        }
        guard json?["type"]?.stringValue == "auth", let token = json?["token"]?.stringValue else {
            return refuse("the first message must be {\"type\":\"auth\",\"token\":...}", reason: "no_auth")
        }
        let user: AuthenticatedUser
        do {
            user = try await verifier.verify(token)
        } catch {
            return refuse("invalid token", reason: "invalid_token")
        }
        let clientID = json?["clientId"]?.stringValue.flatMap { $0.isEmpty || $0.count > 200 ? nil : $0 }
        guard let connection = hub.connect(userID: user.id, appID: appID, clientID: clientID, validUntil: user.validUntil, sink: sink)
        else { return .shuttingDown }
        // Pushes into the user's spaces reach this connection from before it says auth-ok.
        await fanOut.refresh([user.id])
        return .accepted(connection)
    }

    /// The message a connection closed for `why` is sent with its close frame, counted.
    func closing(_ why: RealtimeHub.CloseReason) -> (WebSocketErrorCode, String) {
        switch why {
        case .tooSlow:
            return (.policyViolation, "too slow")
        case .replaced:
            metrics.count("sync_ws_closed_total", [("reason", "too_many_connections")])
            return (.policyViolation, "too many connections")
        case .expired:
            metrics.count("sync_ws_closed_total", [("reason", "token_expired")])
            return (.policyViolation, "token expired")
        case .shutdown:
            return (.goingAway, "server shutting down")
        }
    }

    /// At graceful shutdown: closes every socket (1001) and waits, at most the close timeout,
    /// for their channels to close, so the peers get their close frames before the process ends.
    struct Drain: Service {
        let controller: WebSocketController

        func run() async throws {
            try? await gracefulShutdown()
            controller.hub.shutdown()
            let deadline = ContinuousClock.now + WebSocketController.closeTimeout
            // Cut short when the shutdown bound (SHUTDOWN_TIMEOUT) cancels the services.
            while controller.live.value > 0, ContinuousClock.now < deadline, await timerSleep(for: .milliseconds(20)) {}
        }
    }
}
