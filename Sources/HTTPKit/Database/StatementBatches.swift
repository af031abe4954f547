import NIOConcurrencyHelpers
import PostgresNIO

/// Requests that arrive while PostgreSQL is busy with others go to it together.
///
/// At most `lanes` statements of this kind run at once. An item that finds a lane free runs
/// alone at once; one that arrives while every lane is busy waits, and when a lane's
/// statement ends, everything that waited meanwhile goes in one statement (`together`): one
/// round trip, one transaction and one commit (one WAL flush) for all of them. Nothing waits
/// for a timer: under no load an item runs at once, under load the batches grow with it.
///
/// A batch is ordered by `precedes` (arrival order among equals), so that batches take their
/// row locks in one order and never deadlock one another. When PostgreSQL refuses a batch
/// (``BatchRefused``: it rolled all of it back) each item runs alone and gets its own outcome; when
/// the connection fails under it, each item gets that error (whether it committed is unknown,
/// as for an item alone).
///
/// mana-sync batches pushes of own rows (`sync.push_batch`), mana-credits debits (`credits.debit_batch`).
package final class StatementBatches<Item: Sendable, Outcome: Sendable>: Sendable {
    package struct Settings: Sendable {
        /// Statements (each an item alone or a batch) at once; 0: every item alone, no lanes.
        package var lanes: Int
        /// Most items in one batch.
        package var items: Int
        /// Most bytes (as `size` counts them) in one batch; an item larger than a quarter of it runs alone.
        package var bytes: Int

        package init(lanes: Int, items: Int = 64, bytes: Int = 256 * 1024) {
            self.lanes = lanes
            self.items = items
            self.bytes = bytes
        }
    }

    private struct Waiting: Sendable {
        let item: Item
        let outcome: OneShot<Outcome>
    }

    private struct State {
        var running = 0
        /// Not empty only while every lane runs.
        var waiting: [Waiting] = []
    }

    package let settings: Settings
    private let state = NIOLockedValueBox(State())
    private let size: @Sendable (Item) -> Int
    private let precedes: @Sendable (Item, Item) -> Bool
    private let alone: @Sendable (Item) async throws -> Outcome
    private let together: @Sendable ([Item]) async throws -> [Outcome]
    private let batched: @Sendable (_ size: Int, _ refused: Bool) -> Void

    /// - Parameters:
    ///   - size: an item's bytes (its share of ``Settings/bytes``).
    ///   - precedes: the order of items in a batch (the order its statement locks rows in).
    ///   - alone: runs one item in its own statement.
    ///   - together: runs items, ordered, in one statement and returns their outcomes in that
    ///     order; throws ``BatchRefused`` when PostgreSQL rolled the batch back (``refusedAsBatch(_:)``).
    ///   - batched: told of each batch PostgreSQL answered: its size, and whether it refused it (metrics).
    package init(
        settings: Settings, size: @escaping @Sendable (Item) -> Int, precedes: @escaping @Sendable (Item, Item) -> Bool,
        alone: @escaping @Sendable (Item) async throws -> Outcome, together: @escaping @Sendable ([Item]) async throws -> [Outcome],
        batched: @escaping @Sendable (_ size: Int, _ refused: Bool) -> Void = { _, _ in }
    ) {
        self.settings = settings
        self.size = size
        self.precedes = precedes
        self.alone = alone
        self.together = together
        self.batched = batched
    }

    /// Items waiting for a lane now.
    package var waitingCount: Int { state.withLockedValue { $0.waiting.count } }

    /// Whether `item` may wait to go with others.
    package func admits(_ item: Item) -> Bool {
        settings.lanes > 0 && size(item) <= settings.bytes / 4
    }

    /// Runs `item` now if a lane is free, else with the next batch.
    package func run(_ item: Item) async throws -> Outcome {
        let outcome = OneShot<Outcome>()
        let now = state.withLockedValue { state -> Bool in
            if state.running < settings.lanes {
                state.running += 1
                return true
            }
            state.waiting.append(Waiting(item: item, outcome: outcome))
            return false
        }
        guard now else {
            // Cancelled while waiting (the request's deadline): it leaves the queue unsent, so
            // requests that gave up never pile up behind a lane that cannot get a connection.
            return try await outcome.value(resumingOnCancel: true) {
                self.state.withLockedValue { $0.waiting.removeAll { $0.outcome === outcome } }
            }
        }
        let result = await Result(awaiting: { try await alone(item) })
        next()
        return try result.get()
    }

    /// A lane's statement ended: it takes what waited meanwhile, or is free.
    private func next() {
        let batch = state.withLockedValue { state -> [Waiting]? in
            guard !state.waiting.isEmpty else {
                state.running -= 1
                return nil
            }
            var taken = 0
            var bytes = 0
            for waiting in state.waiting {
                let size = size(waiting.item)
                guard taken < settings.items, taken == 0 || bytes + size <= settings.bytes else { break }
                taken += 1
                bytes += size
            }
            defer { state.waiting.removeFirst(taken) }
            return Array(state.waiting.prefix(taken))
        }
        guard let batch else { return }
        Task(executorPreference: ConnectionExecutor.current) {
            await self.send(batch)
            self.next()
        }
    }

    private func send(_ batch: [Waiting]) async {
        if batch.count == 1 {
            await batch[0].outcome.resume { try await alone(batch[0].item) }
            return
        }
        // Swift's sort is stable: arrival order among equals.
        let precedes = self.precedes
        let ordered = batch.sorted { precedes($0.item, $1.item) }
        do {
            let outcomes = try await together(ordered.map(\.item))
            batched(ordered.count, false)
            for (waiting, outcome) in zip(ordered, outcomes) { waiting.outcome.resume(with: .success(outcome)) }
        } catch is BatchRefused {
            // PostgreSQL rolled all of the batch back: each item alone.
            batched(ordered.count, true)
            await withTaskGroup(of: Void.self) { group in
                for waiting in ordered {
                    group.addTask { await waiting.outcome.resume { try await self.alone(waiting.item) } }
                }
            }
        } catch {
            for waiting in ordered { waiting.outcome.resume(with: .failure(error)) }
        }
    }
}

/// PostgreSQL answered a batch with an error: it rolled all of it back, nothing is stored.
package struct BatchRefused: Error {
    package let error: any Error
    package init(error: any Error) { self.error = error }
}

/// Runs a batch's statement: an error PostgreSQL answered (not a lost connection) becomes
/// ``BatchRefused``, so ``StatementBatches`` runs each item alone.
package func refusedAsBatch<T>(_ body: () async throws -> T) async throws -> T {
    do {
        return try await body()
    } catch let error as PSQLError where error.serverInfo != nil {
        throw BatchRefused(error: error)
    }
}
