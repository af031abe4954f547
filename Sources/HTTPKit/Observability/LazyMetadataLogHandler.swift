import Logging

/// A log handler's metadata kept here and handed to it only when a line is logged.
///
/// swift-log's `StreamLogHandler` formats its whole metadata into text every time a key is set
/// (`didSet` on `metadata`). Every request sets two keys on its logger (Hummingbird's request id,
/// then ours, ``RequestLogMiddleware``), so a service logging only errors formatted metadata
/// twice per request for nothing: 1–2 % of mana-sync's CPU during one-change pushes (perf,
/// docs/benchmarks.md, session 36). Wrapped, the inner handler's own metadata stays empty and
/// the metadata goes with each line instead; the line is the same (keys sorted, the call's
/// own metadata overriding the logger's).
package struct LazyMetadataLogHandler: LogHandler {
    var inner: any LogHandler
    package var metadata: Logger.Metadata = [:]

    package init(_ inner: any LogHandler) {
        self.inner = inner
    }

    package var logLevel: Logger.Level {
        get { inner.logLevel }
        set { inner.logLevel = newValue }
    }

    package subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    package func log(event: LogEvent) {
        guard !metadata.isEmpty else { return inner.log(event: event) }
        var event = event
        event.metadata = metadata.merging(event.metadata ?? [:]) { _, explicit in explicit }
        inner.log(event: event)
    }
}
