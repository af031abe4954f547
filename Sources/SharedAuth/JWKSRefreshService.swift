import ServiceLifecycle

/// Loads the JWKS at start-up and refreshes it on an interval until shutdown. A service
/// that starts while mana-auth is down still starts; it answers 401 until keys arrive
/// (by this refresh or by the refetch an unknown `kid` triggers).
package struct JWKSRefreshService: Service {
    let keys: JWKSKeyStore
    let interval: Duration

    package init(keys: JWKSKeyStore, interval: Duration) {
        self.keys = keys
        self.interval = interval
    }

    package func run() async throws {
        await keys.refresh()
        while true {
            do {
                try await cancelWhenGracefulShutdown { try await Task.sleep(for: interval) }
            } catch {
                return  // shutdown or cancellation
            }
            await keys.refresh()
        }
    }
}
