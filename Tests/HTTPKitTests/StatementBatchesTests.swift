import HTTPKit
import NIOConcurrencyHelpers
import Testing

/// How requests share PostgreSQL (``StatementBatches``), without a database: an item with a
/// free lane runs alone at once; items arriving while every lane runs go together, in the
/// batch order; a refused batch runs each item alone; a failed one fails each item.
@Suite(.timeLimit(.minutes(1))) struct StatementBatchesTests {
    struct Failed: Error, Equatable {
        let number: Int
    }

    /// An item: whose row it locks, and a number naming it (its outcome is its number).
    struct Item: Sendable {
        let owner: String
        let number: Int
        var bytes = 2
    }

    typealias Batches = StatementBatches<Item, Int>

    /// Records what ran (each statement: its items' numbers), and holds `alone` until released.
    final class Recorder: Sendable {
        let calls = NIOLockedValueBox<[[Int]]>([])
        /// Batches PostgreSQL answered: size, and whether refused.
        let batched = NIOLockedValueBox<[String]>([])
        let gate = NIOLockedValueBox<[CheckedContinuation<Void, Never>]>([])
        let holding: NIOLockedValueBox<Bool>
        let failing: Set<Int>
        let refuse: Bool
        let breakBatches: Bool

        init(holding: Bool = false, failing: Set<Int> = [], refuse: Bool = false, breakBatches: Bool = false) {
            self.holding = NIOLockedValueBox(holding)
            self.failing = failing
            self.refuse = refuse
            self.breakBatches = breakBatches
        }

        func alone(_ item: Item) async throws -> Int {
            calls.withLockedValue { $0.append([item.number]) }
            if holding.withLockedValue({ $0 }) {
                await withCheckedContinuation { continuation in gate.withLockedValue { $0.append(continuation) } }
            }
            if failing.contains(item.number) { throw Failed(number: item.number) }
            return item.number
        }

        func together(_ items: [Item]) async throws -> [Int] {
            calls.withLockedValue { $0.append(items.map(\.number)) }
            if refuse { throw BatchRefused(error: Failed(number: -1)) }
            if breakBatches { throw Failed(number: -2) }
            return items.map(\.number)
        }

        func release() {
            holding.withLockedValue { $0 = false }
            for continuation in gate.withLockedValue({ gate in defer { gate = [] }; return gate }) { continuation.resume() }
        }

        func batches(_ settings: Batches.Settings) -> Batches {
            Batches(
                settings: settings, size: \.bytes, precedes: { $0.owner < $1.owner }, alone: { try await self.alone($0) },
                together: { try await self.together($0) },
                batched: { size, refused in self.batched.withLockedValue { $0.append("\(size)\(refused ? " refused" : "")") } })
        }
    }

    /// Starts `items` one after another (each waiting before the next starts) while a first
    /// item (number 0) holds the one lane; then releases it. Each item's outcome by number.
    static func whileTheLaneIsHeld(_ recorder: Recorder, settings: Batches.Settings, _ items: [Item]) async throws -> [Int: Result<Int, Failed>] {
        let batches = recorder.batches(settings)
        return try await withThrowingTaskGroup(of: (Int, Result<Int, Failed>).self) { group in
            group.addTask { (0, .success(try await batches.run(Item(owner: "first", number: 0)))) }
            while recorder.calls.withLockedValue({ $0.count }) == 0 { try await Task.sleep(for: .milliseconds(1)) }
            for (index, item) in items.enumerated() {
                group.addTask {
                    do {
                        return (item.number, .success(try await batches.run(item)))
                    } catch let failed as Failed {
                        return (item.number, .failure(failed))
                    }
                }
                while batches.waitingCount < index + 1 { try await Task.sleep(for: .milliseconds(1)) }
            }
            recorder.release()
            var results: [Int: Result<Int, Failed>] = [:]
            for try await (number, result) in group { results[number] = result }
            return results
        }
    }

    @Test func anItemWithAFreeLaneRunsAloneAtOnce() async throws {
        let recorder = Recorder()
        let batches = recorder.batches(.init(lanes: 2))
        for number in 1...3 { #expect(try await batches.run(Item(owner: "u", number: number)) == number) }
        #expect(recorder.calls.withLockedValue { $0 } == [[1], [2], [3]])
    }

    @Test func itemsArrivingWhileEveryLaneRunsGoTogetherInBatchOrder() async throws {
        let recorder = Recorder(holding: true)
        let items = [Item(owner: "b", number: 1), Item(owner: "a", number: 2), Item(owner: "b", number: 3), Item(owner: "a", number: 4)]
        let results = try await Self.whileTheLaneIsHeld(recorder, settings: .init(lanes: 1), items)
        // The first alone, then one batch: the a's, then the b's, each in arrival order.
        #expect(recorder.calls.withLockedValue { $0 } == [[0], [2, 4, 1, 3]])
        #expect(recorder.batched.withLockedValue { $0 } == ["4"])
        for number in 0...4 { #expect(results[number] == .success(number)) }
    }

    @Test func aBatchTakesAtMostItsItemsAndBytes() async throws {
        let byCount = Recorder(holding: true)
        _ = try await Self.whileTheLaneIsHeld(byCount, settings: .init(lanes: 1, items: 3), (1...7).map { Item(owner: "u", number: $0) })
        #expect(byCount.calls.withLockedValue { $0 } == [[0], [1, 2, 3], [4, 5, 6], [7]])

        // 100 bytes each may wait (a quarter of 400); four of them fill a batch.
        let byBytes = Recorder(holding: true)
        let settings = Batches.Settings(lanes: 1, items: 64, bytes: 400)
        _ = try await Self.whileTheLaneIsHeld(byBytes, settings: settings, (1...6).map { Item(owner: "u", number: $0, bytes: 100) })
        #expect(byBytes.calls.withLockedValue { $0 } == [[0], [1, 2, 3, 4], [5, 6]])
        // Larger than a quarter of a batch, or no lanes: never waits.
        #expect(!byBytes.batches(settings).admits(Item(owner: "u", number: 1, bytes: 101)))
        #expect(!byBytes.batches(.init(lanes: 0)).admits(Item(owner: "u", number: 1)))
    }

    @Test func anItemCancelledWhileWaitingLeavesTheQueueUnsent() async throws {
        let recorder = Recorder(holding: true)
        let batches = recorder.batches(.init(lanes: 1))
        let first = Task { try await batches.run(Item(owner: "first", number: 0)) }
        while recorder.calls.withLockedValue({ $0.count }) == 0 { try await Task.sleep(for: .milliseconds(1)) }
        let waiting = Task { try await batches.run(Item(owner: "gave-up", number: 1)) }
        while batches.waitingCount < 1 { try await Task.sleep(for: .milliseconds(1)) }
        waiting.cancel()
        await #expect(throws: CancellationError.self) { try await waiting.value }
        #expect(batches.waitingCount == 0)
        recorder.release()
        #expect(try await first.value == 0)
        #expect(try await batches.run(Item(owner: "later", number: 2)) == 2)
        #expect(recorder.calls.withLockedValue { $0 } == [[0], [2]])
    }

    @Test func aRefusedBatchRunsEachItemAloneWithItsOwnOutcome() async throws {
        let recorder = Recorder(holding: true, failing: [2], refuse: true)
        let results = try await Self.whileTheLaneIsHeld(recorder, settings: .init(lanes: 1), (1...3).map { Item(owner: "u\($0)", number: $0) })
        #expect(results[1] == .success(1))
        #expect(results[2] == .failure(Failed(number: 2)))
        #expect(results[3] == .success(3))
        let calls = recorder.calls.withLockedValue { $0 }
        #expect(calls.prefix(2) == [[0], [1, 2, 3]])
        #expect(Set(calls.dropFirst(2)) == [[1], [2], [3]])
        #expect(recorder.batched.withLockedValue { $0 } == ["3 refused"])
    }

    @Test func aBatchWhoseConnectionFailedFailsEveryItemWithoutRunningItAgain() async throws {
        let recorder = Recorder(holding: true, breakBatches: true)
        let results = try await Self.whileTheLaneIsHeld(recorder, settings: .init(lanes: 1), (1...3).map { Item(owner: "u\($0)", number: $0) })
        for number in 1...3 { #expect(results[number] == .failure(Failed(number: -2))) }
        #expect(recorder.calls.withLockedValue { $0 } == [[0], [1, 2, 3]])
        #expect(recorder.batched.withLockedValue { $0 }.isEmpty)
    }
}
