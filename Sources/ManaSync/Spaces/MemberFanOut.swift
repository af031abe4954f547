import Foundation

/// Keeps the hub's space index current, so a push into a space reaches every member listening
/// on any replica (spaces.md section 9, "Fan-out"): a user's spaces are resolved when it opens
/// a WebSocket or SSE stream, when its memberships are invalidated (on every replica, through
/// the notification channel), and every ``refreshInterval`` for everyone listening.
///
/// While a user's memberships cannot be resolved its index entry is emptied: a removed member
/// must not hear of a space's pushes; a member misses live notices only, never rows.
struct MemberFanOut: Sendable {
    let hub: RealtimeHub
    let directory: MembershipDirectory
    /// How many lookups one refresh runs at once.
    static let parallelLookups = 16

    /// Resolves the spaces of those of `users` listening here.
    func refresh(_ users: [String]) async {
        await withTaskGroup(of: Void.self) { group in
            for (index, user) in users.enumerated() {
                if index >= Self.parallelLookups { await group.next() }
                group.addTask {
                    let ticket = hub.spaceTicket()
                    let spaces = await directory.lookup(userID: user).memberships?.spaces ?? []
                    hub.setSpaces(Set(spaces), of: user, ticket: ticket)
                }
            }
        }
    }

    /// Resolves the spaces of everyone listening here.
    func refreshAll() async { await refresh(hub.listeningUsers) }
}
