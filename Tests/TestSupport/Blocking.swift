import NIOPosix

/// Runs blocking work (waiting for a child process, a blocking socket read) on threads of its
/// own. Swift Concurrency's pool has one thread per core: on a 2-core runner one blocked
/// thread halves what every in-process server and stand-in of every test can do, and two
/// stop them all (a JWKS stand-in then takes seconds to answer a loopback request).
package enum Blocking {
    private static let pool: NIOThreadPool = {
        let pool = NIOThreadPool(numberOfThreads: 8)
        pool.start()
        return pool
    }()

    /// `body`'s result, computed on one of the pool's threads.
    package static func run<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await pool.runIfActive(body)
    }
}
