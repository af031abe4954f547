import HTTPKit
import Logging
import Synchronization
import Testing

@Suite struct LazyMetadataLogHandlerTests {
    /// Collects what a `StreamLogHandler` writes.
    final class Lines: Sendable {
        let text = Mutex("")
        var stream: Stream { Stream(lines: self) }
        struct Stream: TextOutputStream, Sendable {
            let lines: Lines
            mutating func write(_ string: String) { lines.text.withLock { $0 += string } }
        }
        /// The lines without their timestamps (the first field), which may differ by a second.
        var withoutTimes: [String] {
            text.withLock { $0 }.split(separator: "\n").map { $0.split(separator: " ", maxSplits: 1).last.map(String.init) ?? "" }
        }
    }

    /// The wrapped handler writes what the stream handler writes with the same metadata set on
    /// it directly: the logger's keys sorted, the call's own metadata winning.
    @Test func linesAreThoseOfTheHandlerItWraps() {
        let direct = Lines()
        let wrapped = Lines()
        var plain = Logger(label: "svc") { StreamLogHandler(label: $0, stream: direct.stream, metadataProvider: nil) }
        var lazy = Logger(label: "svc") {
            LazyMetadataLogHandler(StreamLogHandler(label: $0, stream: wrapped.stream, metadataProvider: nil))
        }
        Self.exercise(&plain)
        Self.exercise(&lazy)
        #expect(wrapped.withoutTimes.count == 3)
        #expect(wrapped.withoutTimes == direct.withoutTimes)
        #expect(wrapped.withoutTimes[2].contains("hb.request.id=7 request_id=r-2 status=500"))
        #expect(lazy[metadataKey: "request_id"] == "r-1")
        #expect(lazy.logLevel == .info)
    }

    static func exercise(_ logger: inout Logger) {
        logger.logLevel = .info
        logger.info("no metadata")
        logger[metadataKey: "request_id"] = "r-1"
        logger[metadataKey: "hb.request.id"] = "7"
        logger.info("with the logger's")
        logger.error("with the call's", metadata: ["status": "500", "request_id": "r-2"])
        logger.debug("below the level")
    }
}
