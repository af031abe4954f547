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

    /// Runs `body` holding one slot.
    package static func withSlot<T>(_ body: () async throws -> T) async throws -> T {
        try await slots.withPermit(body)
    }
}
