import Testing

/// Waits until `condition` holds, checking every 50 ms; records a failure after `limit`.
package func eventually(within limit: Duration = .seconds(10), _ condition: @Sendable () async throws -> Bool) async throws {
    let deadline = ContinuousClock.now + limit
    while ContinuousClock.now < deadline {
        if try await condition() { return }
        try await Task.sleep(for: .milliseconds(50))
    }
    Issue.record("condition not met within \(limit)")
}
