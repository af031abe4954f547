import HummingbirdCore
import Logging
import NIOCore

/// Runs each connection's handling (Hummingbird's task per connection, with every request's
/// handler it calls) on the event loop that owns the connection's socket, instead of on Swift
/// Concurrency's threads: reading a request, writing its response and resuming after a
/// database answer on the same loop need no hop between threads.
///
/// ```swift
/// HTTPServerBuilder { responder in
///     ConnectionOnItsEventLoop(inner: HTTP1Channel(responder: responder), enabled: settings.connectionOnEventLoop)
/// }
/// ```
///
/// What the handler awaits elsewhere (a PostgreSQL connection on another loop, a timer) still
/// runs there and hands the task back to this loop. A `Task {}` does not inherit the
/// preference: helpers that start one on the request's behalf pass ``ConnectionExecutor/current``
/// as its `executorPreference` (``PostgresClient/withGuardedConnection(retire:_:)``).
/// `MANA_CONNECTION_ON_EVENT_LOOP=0` turns it off (``ChassisSettings/connectionOnEventLoop``).
package struct ConnectionOnItsEventLoop<Inner: ServerChildChannel>: ServerChildChannel {
    package typealias Value = Inner.Value
    let inner: Inner
    let enabled: Bool

    package init(inner: Inner, enabled: Bool) {
        self.inner = inner
        self.enabled = enabled
    }

    package func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Value> {
        inner.setup(channel: channel, logger: logger)
    }

    package func handle(value: Value, logger: Logger) async {
        guard enabled else { return await inner.handle(value: value, logger: logger) }
        await EventLoopTaskExecutor.run(on: value.channel.eventLoop) { await inner.handle(value: value, logger: logger) }
    }
}

/// The executor of the connection a task serves (``ConnectionOnItsEventLoop``), for the
/// unstructured tasks it starts: `Task(executorPreference: ConnectionExecutor.current) {}`
/// runs on the connection's event loop like the task that started it, instead of waking a
/// thread of the global pool. `nil` outside a connection (the default executor then).
package enum ConnectionExecutor {
    @TaskLocal package static var current: (any TaskExecutor)?
}

/// A Swift Concurrency task executor that runs jobs on one NIO event loop.
package final class EventLoopTaskExecutor: TaskExecutor {
    let eventLoop: any EventLoop

    package init(_ eventLoop: any EventLoop) {
        self.eventLoop = eventLoop
    }

    package func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        eventLoop.execute { job.runSynchronously(on: self.asUnownedTaskExecutor()) }
    }
}

extension EventLoopTaskExecutor {
    /// Runs `body` on `loop`, with the unstructured tasks it starts through
    /// ``ConnectionExecutor/current``: an HTTP connection's handling, and background work that
    /// talks to PostgreSQL many times a second (the push notifier, the notification listener),
    /// which on the global pool woke one of its threads for each step.
    package static func run<T: Sendable>(on loop: any EventLoop, _ body: () async throws -> T) async rethrows -> T {
        let executor = EventLoopTaskExecutor(loop)
        return try await ConnectionExecutor.$current.withValue(executor) {
            try await withTaskExecutorPreference(executor) { try await body() }
        }
    }
}
