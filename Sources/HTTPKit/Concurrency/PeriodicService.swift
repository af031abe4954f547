import ServiceLifecycle

/// Runs `work` once at start and then every `interval`, until graceful shutdown (which
/// interrupts the wait at once). For the recurring charge and the gift expiry.
package struct PeriodicService: Service {
    let interval: Duration
    let work: @Sendable () async -> Void

    package init(every interval: Duration, _ work: @escaping @Sendable () async -> Void) {
        self.interval = interval
        self.work = work
    }

    package func run() async throws {
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                await work()
                try? await Task.sleep(for: interval)
            }
        }
    }
}
