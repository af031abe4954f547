import Logging
import NIOConcurrencyHelpers

/// A logger that keeps every line (message and metadata) so tests can check what was logged.
package final class LogCapture: Sendable {
    private let lines = NIOLockedValueBox<[String]>([])

    package init() {}

    /// Everything logged so far, one string per event.
    package var text: String { lines.withLockedValue { $0.joined(separator: "\n") } }

    /// A logger writing into this capture at `level`.
    package func logger(level: Logger.Level = .trace) -> Logger {
        var logger = Logger(label: "capture") { _ in Handler(capture: self) }
        logger.logLevel = level
        return logger
    }

    fileprivate func append(_ line: String) {
        lines.withLockedValue { $0.append(line) }
    }

    private struct Handler: LogHandler {
        let capture: LogCapture
        var metadata: Logger.Metadata = [:]
        var logLevel: Logger.Level = .trace

        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }

        func log(event: LogEvent) {
            let all = metadata.merging(event.metadata ?? [:]) { _, new in new }
            capture.append("\(event.level) \(event.message) \(all)")
        }
    }
}
