import HTTPKit
import Logging
import Testing
import TestSupport

/// The PostgreSQL client runs as a service that work waits for; its background log drops
/// only PostgresNIO's premature-lease warning.
@Suite struct DatabaseServiceTests {
    @Test func theBackgroundLoggerDropsOnlyThePrematureLeaseWarning() {
        let capture = LogCapture()
        let logger = DatabaseService.backgroundLogger(capture.logger(level: .debug))
        logger.warning("Trying to lease connection from `PostgresClient`, but `PostgresClient.run()` hasn't been called yet.")
        logger.warning("Connection closed unexpectedly")
        logger.debug("Trying to lease connection from `PostgresClient` (debug)")
        #expect(!capture.text.contains("hasn't been called yet"))
        #expect(capture.text.contains("Connection closed unexpectedly"))
        #expect(capture.text.contains("(debug)"))
    }

    @Test func aLatchReleasesEveryWaiterAndLaterOnesAtOnce() async {
        let latch = Latch()
        async let first: Void = latch.wait()
        async let second: Void = latch.wait()
        latch.open()
        _ = await (first, second)
        await latch.wait()
        #expect(latch.isOpen)
    }
}
