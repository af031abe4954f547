import NIOConcurrencyHelpers
import NIOCore
import PostgresNIO

/// Who waits on which connection's close. NIO cannot remove a callback from a future, so
/// each connection gets one `closeFuture` callback (registered the first time it is
/// watched) that calls whoever watches it at that moment; watchers come and go with each
/// lease without piling callbacks onto long-lived connections.
final class CloseWatch: Sendable {
    static let shared = CloseWatch()

    /// Per connection, its watchers' actions by token. A connection's entry goes when it
    /// closes; watching it again afterwards registers on its (completed) close future, which
    /// runs the action at once.
    private let state = NIOLockedValueBox<(next: Int, connections: [ObjectIdentifier: [Int: @Sendable () -> Void]])>((0, [:]))

    /// Runs `onClose` when `connection` closes, unless ``unwatch(_:_:)`` comes first.
    func watch(_ connection: PostgresConnection, onClose: @escaping @Sendable () -> Void) -> Int {
        let key = ObjectIdentifier(connection)
        let (token, isNew) = state.withLockedValue { state -> (Int, Bool) in
            state.next += 1
            let isNew = state.connections[key] == nil
            state.connections[key, default: [:]][state.next] = onClose
            return (state.next, isNew)
        }
        if isNew {
            connection.closeFuture.whenComplete { [weak self] _ in self?.closed(key) }
        }
        return token
    }

    func unwatch(_ connection: PostgresConnection, _ token: Int) {
        _ = state.withLockedValue { $0.connections[ObjectIdentifier(connection)]?.removeValue(forKey: token) }
    }

    private func closed(_ key: ObjectIdentifier) {
        let actions = state.withLockedValue { $0.connections.removeValue(forKey: key)?.values.map { $0 } ?? [] }
        actions.forEach { $0() }
    }
}
