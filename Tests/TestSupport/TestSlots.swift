import Foundation
import HTTPKit

/// How many services under test run at once in this process. Swift Testing starts every test
/// at once; on a 2-core machine that is busy with other work (a CI runner building beside
/// the tests) forty live services starve each other until their own deadlines fire. Tests
/// that start a service take a slot first; the others wait (not counted against anything
/// but their suite's time limit).
package enum TestSlots {
    /// Three per core, at least six (`TEST_SERVICE_SLOTS` overrides).
    package static let count = ProcessInfo.processInfo.environment["TEST_SERVICE_SLOTS"].flatMap(Int.init)
        ?? max(6, ProcessInfo.processInfo.activeProcessorCount * 3)

    private static let slots = AsyncSemaphore(permits: count)

    /// Whether this task already holds a slot (a service started inside another's test).
    @TaskLocal private static var holding = false

    /// Runs `body` holding one slot; a task that holds one already (a second replica started
    /// inside a test) runs it in that slot, so nested services cannot wait on each other.
    package static func withSlot<T>(_ body: () async throws -> T) async throws -> T {
        if holding { return try await body() }
        return try await slots.withPermit { try await $holding.withValue(true) { try await body() } }
    }
}
