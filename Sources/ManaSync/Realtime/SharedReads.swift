import Foundation
import Synchronization

/// One read of a table's next page serves every SSE stream of that (user, app) that needs the
/// same page: a push wakes all of a user's open tabs at once, and they would otherwise each
/// run the same query.
///
/// A stream may join a read only if that read started no earlier than the news it is waking
/// for was announced (the announcement comes after the push committed), so a shared page
/// never hides a change from a stream. Reads include every client's changes; each stream
/// leaves out its own client's.
final class SharedReads: Sendable {
    struct Key: Hashable, Sendable {
        let userID: String
        let appID: String
        let table: String
        let since: Int64
    }

    private struct Read: Sendable {
        let started: ContinuousClock.Instant
        let task: Task<ChangeLogRepository.Page, any Error>
    }

    private let reads = Mutex<(entries: [Key: Read], swept: ContinuousClock.Instant)>(([:], .now))

    /// The page for `key`, from a read started at or after `notBefore` (joined if one is under
    /// way, else started with `read`). `shared` tells whether another stream's read served it.
    func page(
        _ key: Key, notBefore: ContinuousClock.Instant,
        read: @escaping @Sendable () async throws -> ChangeLogRepository.Page
    ) async throws -> (page: ChangeLogRepository.Page, shared: Bool) {
        let (task, shared) = reads.withLock { reads -> (Task<ChangeLogRepository.Page, any Error>, Bool) in
            let now = ContinuousClock.now
            if let known = reads.entries[key], known.started >= notBefore { return (known.task, true) }
            // Finished reads stay joinable briefly (streams woken by one notice arrive a few
            // milliseconds apart), then go: swept once per retention period, not on every read.
            if now - reads.swept > Self.retention {
                reads.entries = reads.entries.filter { now - $0.value.started < Self.retention }
                reads.swept = now
            }
            let task = Task { try await read() }
            reads.entries[key] = Read(started: now, task: task)
            return (task, false)
        }
        return (try await task.value, shared)
    }

    /// How long a read may serve streams that join after it started.
    static let retention: Duration = .seconds(2)
}
