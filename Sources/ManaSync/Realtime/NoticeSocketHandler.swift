import Foundation
import HTTPKit
import Logging
import NIOCore
import NIOWebSocket
import Synchronization

/// One WebSocket of `/ws` or `/ws/{appId}`, on its channel's event loop (every method runs
/// there). The protocol is ``WebSocketController``'s: auth message first, then notices out,
/// `ping` answered with `pong`, everything else ignored.
///
/// Nothing runs for an idle socket: its auth timeout, pings and close timeout are event-loop
/// timers, and a notice is written from the loop by the hub's ``Sink``. Only checking an auth
/// message (the token, the member fan-out) runs in a short task.
final class NoticeSocketHandler: ChannelInboundHandler {
    typealias InboundIn = WebSocketFrame
    typealias OutboundOut = WebSocketFrame

    private enum State {
        case awaitingAuth
        /// The auth message is being checked; texts that arrived meanwhile wait for the answer.
        case authenticating(received: [String])
        case open(RealtimeHub.Connection)
        /// Our close frame is out (or the peer's answered): the channel closes next.
        case closing
        case closed
    }

    private let controller: WebSocketController
    private let appID: String?
    private let logger: Logger
    private var state = State.awaitingAuth
    private var sink: Sink?
    /// Notices the hub sent before the auth-ok went out; they follow it.
    private var early: [String] = []
    private var authTimer: Scheduled<Void>?
    private var pingTimer: Scheduled<Void>?
    private var closeTimer: Scheduled<Void>?
    /// A ping of ours the peer has not answered yet.
    private var pongOwed = false

    init(controller: WebSocketController, appID: String?, logger: Logger) {
        self.controller = controller
        self.appID = appID
        self.logger = logger
    }

    private var id: ObjectIdentifier { ObjectIdentifier(self) }

    // MARK: Channel events

    func handlerAdded(context: ChannelHandlerContext) {
        controller.live.add(1)  // until finish()
        controller.metrics.count("sync_ws_upgrades_total")
        let loop = context.eventLoop
        let bound = NIOLoopBound((self, context), eventLoop: loop)
        let admitted = controller.hub.admit(id) {
            loop.execute { bound.value.0.startClose(bound.value.1, .goingAway, "server shutting down") }
        }
        guard admitted else {
            startClose(context, .goingAway, "server shutting down")
            return
        }
        // Cancelled once authenticated, so an idle socket keeps no auth timer (token expiry
        // is the hub's once-a-second sweep).
        authTimer = loop.assumeIsolated().scheduleTask(in: TimeAmount(controller.settings.authTimeout)) { [self] in
            guard case .awaitingAuth = state else { return }
            controller.metrics.count("sync_ws_auth_failures_total", [("reason", "timeout")])
            startClose(context, .policyViolation, "authentication timeout")
        }
        schedulePing(context)
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        finish()
    }

    func channelInactive(context: ChannelHandlerContext) {
        finish()
        context.fireChannelInactive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        switch frame.opcode {
        case .text:
            received(String(buffer: frame.unmaskedData), context)
        case .ping:
            guard frame.fin else { return startClose(context, .protocolError, "") }
            if case .closing = state { return }
            context.writeAndFlush(wrapOutboundOut(WebSocketFrame(fin: true, opcode: .pong, data: frame.unmaskedData)), promise: nil)
        case .pong:
            pongOwed = false
        case .connectionClose:
            receivedClose(frame, context)
        default:
            break  // binary frames are ignored, like unknown message types
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        switch error {
        case NIOWebSocketFrameAggregator.Error.accumulatedFrameSizeIsTooLarge, NIOWebSocketFrameAggregator.Error.tooManyFragments:
            startClose(context, .messageTooLarge, "")
        case is NIOWebSocketFrameAggregator.Error:
            startClose(context, .protocolError, "")
        default:
            logger.debug("websocket closed", metadata: ["error": "\(error)"])
            context.close(promise: nil)
        }
    }

    // MARK: Messages

    private func received(_ text: String, _ context: ChannelHandlerContext) {
        switch state {
        case .open(let connection):
            let json = try? JSONParser.parse(text)
            if json?["type"]?.stringValue == "ping", !connection.send(#"{"type":"pong"}"#) {
                controller.hub.disconnect(connection, .tooSlow)
            }
        case .awaitingAuth:
            state = .authenticating(received: [])
            let json = try? JSONParser.parse(text)
            let sink = Sink(handler: self, context: context, limit: controller.hub.queueLimit)
            self.sink = sink
            let loop = context.eventLoop
            let bound = NIOLoopBound((self, context), eventLoop: loop)
            Task { [controller, appID] in
                let admission = await controller.authenticate(json, appID: appID, sink: sink)
                loop.execute { bound.value.0.authenticated(admission, bound.value.1) }
            }
        case .authenticating(var received):
            // A client may send right after its auth message; at most a few are kept.
            if received.count < 16 { received.append(text) }
            state = .authenticating(received: received)
        case .closing, .closed:
            break
        }
    }

    private func authenticated(_ admission: WebSocketController.Admission, _ context: ChannelHandlerContext) {
        guard case .authenticating(let received) = state else {
            // Closed meanwhile (auth timeout, the peer left, shutdown).
            if case .accepted(let connection) = admission { controller.hub.disconnect(connection) }
            return
        }
        switch admission {
        case .refused(let message):
            write(JSONText.sorted(["type": "error", "message": .string(message)]), context)
            startClose(context, .policyViolation, message)
        case .shuttingDown:
            startClose(context, .goingAway, "server shutting down")
        case .accepted(let connection):
            controller.hub.release(id)
            authTimer?.cancel()
            authTimer = nil
            state = .open(connection)
            write(#"{"type":"auth-ok"}"#, context)
            let queued = early
            early = []
            for text in queued { deliver(text, context) }
            for text in received { self.received(text, context) }
        }
    }

    /// A notice from the hub (through the sink).
    fileprivate func deliver(_ text: String, _ context: ChannelHandlerContext) {
        switch state {
        case .open(let connection):
            // A write the peer does not take within the write timeout drops the connection.
            let sink = self.sink
            let timeout = context.eventLoop.assumeIsolated().scheduleTask(in: TimeAmount(controller.settings.writeTimeout)) { [controller] in
                controller.metrics.count("sync_ws_dropped_slow_total")
                controller.hub.disconnect(connection, .tooSlow)
            }
            let promise = context.eventLoop.makePromise(of: Void.self)
            promise.futureResult.whenComplete { _ in
                timeout.cancel()
                sink?.written()
            }
            context.writeAndFlush(wrapOutboundOut(textFrame(text, context)), promise: promise)
        case .awaitingAuth, .authenticating:
            early.append(text)
        case .closing, .closed:
            sink?.written()
        }
    }

    /// The hub ended the connection (queue full, a newer connection, token expired, shutdown).
    fileprivate func ended(_ why: RealtimeHub.CloseReason, _ context: ChannelHandlerContext) {
        let (code, reason) = controller.closing(why)
        startClose(context, code, reason)
    }

    private func write(_ text: String, _ context: ChannelHandlerContext) {
        context.writeAndFlush(wrapOutboundOut(textFrame(text, context)), promise: nil)
    }

    private func textFrame(_ text: String, _ context: ChannelHandlerContext) -> WebSocketFrame {
        WebSocketFrame(fin: true, opcode: .text, data: context.channel.allocator.buffer(string: text))
    }

    // MARK: Pings and closing

    private func schedulePing(_ context: ChannelHandlerContext) {
        pingTimer = context.eventLoop.assumeIsolated().scheduleTask(in: TimeAmount(controller.settings.pingInterval)) { [self] in
            switch state {
            case .closing, .closed: return
            default: break
            }
            guard !pongOwed else { return startClose(context, .goingAway, "ping timeout") }
            pongOwed = true
            context.writeAndFlush(wrapOutboundOut(WebSocketFrame(fin: true, opcode: .ping, data: context.channel.allocator.buffer(capacity: 0))), promise: nil)
            schedulePing(context)
        }
    }

    /// Sends our close frame; the channel closes when the peer answers, or after the close
    /// timeout (a peer that stopped reading is not waited for longer).
    private func startClose(_ context: ChannelHandlerContext, _ code: WebSocketErrorCode, _ reason: String) {
        guard leave(for: .closing) else { return }
        var data = context.channel.allocator.buffer(capacity: 2 + reason.utf8.count)
        data.write(webSocketErrorCode: code)
        data.writeString(reason)
        context.writeAndFlush(wrapOutboundOut(WebSocketFrame(fin: true, opcode: .connectionClose, data: data)), promise: nil)
        closeTimer = context.eventLoop.assumeIsolated().scheduleTask(in: TimeAmount(WebSocketController.closeTimeout)) {
            context.close(promise: nil)
        }
    }

    private func receivedClose(_ frame: WebSocketFrame, _ context: ChannelHandlerContext) {
        if case .closing = state { return context.close(promise: nil) }  // the peer answered ours
        guard leave(for: .closing) else { return }
        // Echo the peer's status code (none: none), then close.
        var data = frame.unmaskedData
        let echo = data.readSlice(length: min(2, data.readableBytes)) ?? context.channel.allocator.buffer(capacity: 0)
        context.writeAndFlush(wrapOutboundOut(WebSocketFrame(fin: true, opcode: .connectionClose, data: echo)))
            .assumeIsolated().whenComplete { _ in context.close(promise: nil) }
    }

    /// Moves to `next` (`.closing` or `.closed`) from a state before it: the hub forgets the
    /// connection (or the socket still authenticating), and the auth and ping timers stop.
    /// False when the socket already got there.
    private func leave(for next: State) -> Bool {
        switch (state, next) {
        case (.closed, _), (.closing, .closing): return false
        case (.open(let connection), _): controller.hub.disconnect(connection)
        default: break
        }
        controller.hub.release(id)
        state = next
        authTimer?.cancel()
        pingTimer?.cancel()
        authTimer = nil
        pingTimer = nil
        return true
    }

    /// The channel is gone (once: `channelInactive`, then `handlerRemoved`): the sink lets go
    /// of us, and a shutdown stops waiting for this socket.
    private func finish() {
        guard leave(for: .closed) else { return }
        closeTimer?.cancel()
        closeTimer = nil
        early = []
        sink?.detach()
        sink = nil
        controller.live.add(-1)
    }

    // MARK: The hub's end

    /// The connection's end the hub holds: bounds the notices not yet written, and hands each
    /// to the event loop. Called from any thread.
    final class Sink: NoticeSink {
        private let target: Mutex<NIOLoopBound<(NoticeSocketHandler, ChannelHandlerContext)>?>
        private let loop: any EventLoop
        private let limit: Int
        private let queued = Atomic(0)

        fileprivate init(handler: NoticeSocketHandler, context: ChannelHandlerContext, limit: Int) {
            loop = context.eventLoop
            target = Mutex(NIOLoopBound((handler, context), eventLoop: context.eventLoop))
            self.limit = limit
        }

        func send(_ text: String) -> Bool {
            guard queued.wrappingAdd(1, ordering: .relaxed).newValue <= limit else {
                queued.wrappingSubtract(1, ordering: .relaxed)
                return false
            }
            guard let target = target.withLock({ $0 }) else {
                queued.wrappingSubtract(1, ordering: .relaxed)
                return true
            }
            loop.execute { target.value.0.deliver(text, target.value.1) }
            return true
        }

        func close(_ why: RealtimeHub.CloseReason) {
            guard let target = target.withLock({ $0 }) else { return }
            loop.execute { target.value.0.ended(why, target.value.1) }
        }

        fileprivate func written() {
            queued.wrappingSubtract(1, ordering: .relaxed)
        }

        /// The socket is gone: later messages go nowhere, and the handler can be freed.
        fileprivate func detach() {
            target.withLock { $0 = nil }
        }
    }
}
