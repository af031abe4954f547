import Logging
import PostgresNIO

extension DatabaseURL {
    /// A client for this database with up to `maximumConnections` connections, of which it
    /// keeps `minimumConnections` open however idle. The caller runs it (`run()`, or as a
    /// service of the application).
    ///
    /// Work often starts beside `run()` (the migrations before the server accepts
    /// connections, a command's body): a lease that comes first waits for the pool, but
    /// PostgresNIO logs "Trying to lease connection from `PostgresClient`, but
    /// `PostgresClient.run()` hasn't been called yet" for it. That warning is only noise where
    /// `run()` is certain to follow, so the client's background log drops it.
    package func makeClient(maximumConnections: Int, minimumConnections: Int = 0, logger: Logger) -> PostgresClient {
        PostgresClient(
            configuration: clientConfiguration(maximumConnections: maximumConnections, minimumConnections: minimumConnections),
            backgroundLogger: PrematureLeaseFilter.wrapping(logger))
    }
}

/// Forwards everything but PostgresNIO's premature-lease warning (see
/// ``DatabaseURL/makeClient(maximumConnections:minimumConnections:logger:)``).
package struct PrematureLeaseFilter: LogHandler {
    /// `logger`, without the warning.
    package static func wrapping(_ logger: Logger) -> Logger {
        var filtered = Logger(label: logger.label) { _ in PrematureLeaseFilter(inner: logger.handler) }
        filtered.logLevel = logger.logLevel
        return filtered
    }

    var inner: any LogHandler

    package var logLevel: Logger.Level {
        get { inner.logLevel }
        set { inner.logLevel = newValue }
    }

    package var metadata: Logger.Metadata {
        get { inner.metadata }
        set { inner.metadata = newValue }
    }

    package subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { inner[metadataKey: key] }
        set { inner[metadataKey: key] = newValue }
    }

    package func log(event: LogEvent) {
        if event.level == .warning, event.message.description.hasPrefix("Trying to lease connection from `PostgresClient`") { return }
        inner.log(event: event)
    }
}
