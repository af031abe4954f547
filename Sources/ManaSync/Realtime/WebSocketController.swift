import Foundation
import HTTPKit
import Hummingbird
import HummingbirdWebSocket
import Logging
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
struct WebSocketController: Sendable {
    let hub: RealtimeHub
    let fanOut: MemberFanOut
    let verifier: TokenVerifier
    let settings: RealtimeSettings
    let metrics: ServiceMetrics

    static let maximumMessage = 64 * 1024

    func addRoutes(to router: Router<BasicWebSocketRequestContext>) {
        router.ws("ws") { inbound, outbound, context in
            await serve(inbound, outbound, appID: nil, logger: context.logger)
        }
        router.ws(
            "ws/:appId",
            shouldUpgrade: { _, context in
                (try? SyncRequest.validAppID(context.parameters.get("appId") ?? "")) == nil ? .dontUpgrade : .upgrade([:])
            },
            onUpgrade: { inbound, outbound, context in
                await serve(inbound, outbound, appID: context.requestContext.parameters.get("appId"), logger: context.logger)
            })
    }

    /// The connection, once authenticated.
    private final class Session: Sendable {
        let connection = Mutex<RealtimeHub.Connection?>(nil)
        var current: RealtimeHub.Connection? { connection.withLock { $0 } }
    }

    private func serve(_ inbound: WebSocketInboundStream, _ outbound: WebSocketOutboundWriter, appID: String?, logger: Logger) async {
        let session = Session()
        metrics.count("sync_ws_upgrades_total")
        await withGracefulShutdownHandler {
            // Until the first message authenticates; cancelled then, so an idle socket keeps
            // no timer (token expiry is the hub's once-a-second sweep).
            let authTimeout = Task {
                if await timerSleep(for: settings.authTimeout), session.current == nil {
                    metrics.count("sync_ws_auth_failures_total", [("reason", "timeout")])
                    try? await outbound.close(.policyViolation, reason: "authentication timeout")
                }
            }
            defer { authTimeout.cancel() }
            await withTaskGroup(of: Void.self) { group in
                do {
                    for try await message in inbound.messages(maxSize: Self.maximumMessage) {
                        guard case .text(let text) = message else { continue }
                        let json = try? JSONDecoder().decode(JSONValue.self, from: Data(text.utf8))
                        let type = json?["type"]?.stringValue
                        if let connection = session.current {
                            if type == "ping", !connection.send(#"{"type":"pong"}"#) { hub.disconnect(connection, .tooSlow) }
                            continue  // anything else is ignored
                        }
                        guard let connection = await authenticate(json, type: type, appID: appID, outbound: outbound, logger: logger) else {
                            break
                        }
                        session.connection.withLock { $0 = connection }
                        authTimeout.cancel()
                        group.addTask { await write(connection, to: outbound, logger: logger) }
                    }
                } catch {
                    logger.debug("websocket closed", metadata: ["error": "\(error)"])
                }
                group.cancelAll()
            }
        } onGracefulShutdown: {
            if let connection = session.current {
                connection.close()
            } else {
                Task { try? await outbound.close(.goingAway, reason: "server shutting down") }
            }
        }
        if let connection = session.current { hub.disconnect(connection) }
    }

    /// Checks the auth message; on failure answers the error, closes 1008 and returns nil.
    private func authenticate(
        _ json: JSONValue?, type: String?, appID: String?, outbound: WebSocketOutboundWriter, logger: Logger
    ) async -> RealtimeHub.Connection? {
        func refuse(_ message: String, reason: String) async {
            metrics.count("sync_ws_auth_failures_total", [("reason", reason)])
            let body: JSONValue = ["type": "error", "message": .string(message)]
            try? await outbound.write(.text(String(decoding: try! JSONEncoder.sortedKeys.encode(body), as: UTF8.self)))
            try? await outbound.close(.policyViolation, reason: message)
        }
        guard type == "auth", let token = json?["token"]?.stringValue else {
            await refuse("the first message must be {\"type\":\"auth\",\"token\":...}", reason: "no_auth")
            return nil
        }
        let user: AuthenticatedUser
        do {
            user = try await verifier.verify(token)
        } catch {
            await refuse("invalid token", reason: "invalid_token")
            return nil
        }
        let clientID = json?["clientId"]?.stringValue.flatMap { $0.isEmpty || $0.count > 200 ? nil : $0 }
        guard let connection = hub.connect(userID: user.id, appID: appID, clientID: clientID, validUntil: user.validUntil) else {
            try? await outbound.close(.goingAway, reason: "server shutting down")
            return nil
        }
        // Pushes into the user's spaces reach this connection from before it says auth-ok.
        await fanOut.refresh([user.id])
        do {
            try await outbound.write(.text(#"{"type":"auth-ok"}"#))
        } catch {
            hub.disconnect(connection)
            return nil
        }
        return connection
    }

    /// Sends the connection's queue; a write that takes longer than the write timeout drops
    /// the connection, as does a full queue (the hub ends the queue then). A dropped peer is
    /// not waited for: the close is started in the background and the library's close
    /// timeout ends the connection if the peer never answers.
    private func write(_ connection: RealtimeHub.Connection, to outbound: WebSocketOutboundWriter, logger: Logger) async {
        for await text in connection.outbox {
            let write = Task { try await outbound.write(.text(text)) }
            guard await finishes(write, within: settings.writeTimeout), (try? await write.value) != nil else {
                metrics.count("sync_ws_dropped_slow_total")
                hub.disconnect(connection, .tooSlow)
                Task { try? await outbound.close(.policyViolation, reason: "too slow") }
                return
            }
        }
        guard !Task.isCancelled else { return }
        switch connection.closeReason {
        case .tooSlow?:
            Task { try? await outbound.close(.policyViolation, reason: "too slow") }
        case .replaced?:
            metrics.count("sync_ws_closed_total", [("reason", "too_many_connections")])
            try? await outbound.close(.policyViolation, reason: "too many connections")
        case .expired?:
            metrics.count("sync_ws_closed_total", [("reason", "token_expired")])
            try? await outbound.close(.policyViolation, reason: "token expired")
        case .shutdown?, nil:
            try? await outbound.close(.goingAway, reason: "server shutting down")
        }
    }
}
