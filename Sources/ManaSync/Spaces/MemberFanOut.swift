import Foundation
import Synchronization

/// Keeps the hub's space index current, so a push into a space reaches every member listening
/// on any replica (spaces.md section 9, "Fan-out"): a user's spaces are resolved when it opens
/// a WebSocket or SSE stream, when its memberships are invalidated (on every replica, through
/// the notification channel), and every `MEMBERSHIP_CACHE_TTL` for everyone listening.
///
/// While a user's memberships cannot be resolved its index entry is emptied: a removed member
/// must not hear of a space's pushes; a member misses live notices only, never rows. Its
/// lookup is tried again after `MEMBERSHIP_FAILURE_TTL` while it listens, not only at the next
/// periodic refresh.
final class MemberFanOut: Sendable {
    let hub: RealtimeHub
    let directory: MembershipDirectory
    /// Users whose failed lookup is to be tried again (one pending retry each).
    private let retrying = Mutex<Set<String>>([])
    /// How many lookups one refresh runs at once.
    static let parallelLookups = 16

    init(hub: RealtimeHub, directory: MembershipDirectory) {
        self.hub = hub
        self.directory = directory
    }

    /// Resolves the spaces of those of `users` listening here.
    func refresh(_ users: [String]) async {
        await withTaskGroup(of: Void.self) { group in
            for (index, user) in users.enumerated() {
                if index >= Self.parallelLookups { await group.next() }
                group.addTask {
                    let ticket = self.hub.spaceTicket()
                    let lookup = await self.directory.lookup(userID: user)
                    self.hub.setSpaces(Set(ReadScope(lookup).spaces), of: user, ticket: ticket)
                    if lookup == .unavailable { self.retry(user) }
                }
            }
        }
    }

    /// Resolves the spaces of everyone listening here.
    func refreshAll() async { await refresh(hub.listeningUsers) }

    /// Looks `user` up again after the failure pause, if it still listens then.
    private func retry(_ user: String) {
        guard hub.isListening(user), retrying.withLock({ $0.insert(user).inserted }) else { return }
        let pause = directory.settings.failureTTL
        Task {
            try? await Task.sleep(for: pause)
            self.retrying.withLock { _ = $0.remove(user) }
            if self.hub.isListening(user) { await self.refresh([user]) }
        }
    }
}
