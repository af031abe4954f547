import HummingbirdCore
import Logging
import NIOCore

/// Closes a connection whose first request head has not fully arrived within `limit`: the
/// slow-loris defence for servers whose HTTP idle timer starts only after the head (the
/// WebSocket-upgrade channel decides on upgrade first and adds Hummingbird's idle handler
/// afterwards, so a client trickling header bytes would hold its connection forever).
///
/// ```swift
/// HTTPServerBuilder { responder in HeadDeadlineChannel(inner: makeChannel(responder), limit: .seconds(30)) }
/// ```
package struct HeadDeadlineChannel<Inner: ServerChildChannel>: ServerChildChannel {
    package typealias Value = Inner.Value
    let inner: Inner
    let limit: Duration

    package init(inner: Inner, limit: Duration) {
        self.inner = inner
        self.limit = limit
    }

    package func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Value> {
        let limit = TimeAmount(limit)
        return channel.eventLoop.makeCompletedFuture {
            try channel.pipeline.syncOperations.addHandler(HeadDeadlineHandler(limit: limit), position: .first)
        }.flatMap { inner.setup(channel: channel, logger: logger) }
    }

    package func handle(value: Value, logger: Logger) async {
        await inner.handle(value: value, logger: logger)
    }
}

/// Passes bytes through; closes the channel unless `\r\n\r\n` (the end of the first request
/// head) arrives within the limit.
final class HeadDeadlineHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer

    private let limit: TimeAmount
    private var timer: Scheduled<Void>?
    private var headComplete = false
    /// The last bytes seen, so a `\r\n\r\n` split across reads is found.
    private var tail: [UInt8] = []

    init(limit: TimeAmount) {
        self.limit = limit
    }

    func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive { startTimer(context) }
    }

    func channelActive(context: ChannelHandlerContext) {
        startTimer(context)
        context.fireChannelActive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        timer?.cancel()
        timer = nil
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if !headComplete {
            let buffer = unwrapInboundIn(data)
            let bytes = tail + Array(buffer.readableBytesView)
            if bytes.count >= 4, (0...(bytes.count - 4)).contains(where: { bytes[$0] == 13 && bytes[$0 + 1] == 10 && bytes[$0 + 2] == 13 && bytes[$0 + 3] == 10 }) {
                headComplete = true
                timer?.cancel()
                timer = nil
                tail = []
            } else {
                tail = Array(bytes.suffix(3))
            }
        }
        context.fireChannelRead(data)
    }

    private func startTimer(_ context: ChannelHandlerContext) {
        guard timer == nil, !headComplete else { return }
        let loopBound = NIOLoopBound(context, eventLoop: context.eventLoop)
        timer = context.eventLoop.assumeIsolated().scheduleTask(in: limit) {
            loopBound.value.close(promise: nil)
        }
    }
}
