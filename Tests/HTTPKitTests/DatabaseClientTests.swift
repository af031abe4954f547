import HTTPKit
import Logging
import PostgresNIO
import Testing
import TestSupport

/// The PostgreSQL client's background log drops only PostgresNIO's premature-lease warning;
/// background services wait on a latch for the migrations; our connections run without JIT.
@Suite struct DatabaseClientTests {
    @Test func theBackgroundLoggerDropsOnlyThePrematureLeaseWarning() {
        let capture = LogCapture()
        let logger = PrematureLeaseFilter.wrapping(capture.logger(level: .debug))
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

    /// PostgreSQL compiles plans above `jit_above_cost` with LLVM on every execution; a push's
    /// page plan on a large table crossed it (650 ms a push). Our connections turn JIT off.
    @Test func theServicesConnectionsRunWithoutJIT() async throws {
        let jit = try await TestDatabase.withFreshDatabase { client, _ in
            var setting = ""
            for try await (value) in try await client.query("SHOW jit", logger: TestDatabase.logger).decode(String.self) {
                setting = value
            }
            return setting
        }
        #expect(jit == "off")
    }

    /// A `text[]` written element by element arrives as the texts it holds, in order: empty
    /// ones, characters an array literal would quote, long ones; an array of none is empty.
    @Test func aTextArrayParameterArrivesAsTheTextsItHolds() async throws {
        let texts = ["", "a", "é😀\"\\,{} NULL", String(repeating: "x", count: 70_000), "{\"k\":[1,2]}"]
        var array = TextArrayParameter()
        for text in texts.dropLast() { array.append(text) }
        array.append { $0.append(contentsOf: texts.last!.utf8) }
        let bound = array
        let (received, none) = try await TestDatabase.withFreshDatabase { client, _ in
            var bindings = PostgresBindings()
            bindings.append(bound)
            bindings.append(TextArrayParameter())
            let rows = try await client.query(
                PostgresQuery(unsafeSQL: "SELECT $1::text[], cardinality($2::text[])", binds: bindings), logger: TestDatabase.logger)
            var result: ([String], Int) = ([], -1)
            for try await row in rows.decode(([String], Int).self) { result = row }
            return result
        }
        #expect(received == texts)
        #expect(none == 0)
        #expect(array.count == texts.count && array.textBytes == texts.reduce(0) { $0 + $1.utf8.count })
    }
}
