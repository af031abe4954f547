import Foundation
import NIOCore
import NIOPosix

extension ServiceRuntime {
    /// Makes the NIO event loops (which already run every socket and PostgreSQL connection)
    /// Swift Concurrency's global executor, so an `await` on I/O resumes without a hop
    /// between the concurrency pool's threads and an event loop's. Measured with `bench/run`
    /// (docs/benchmarks.md). Call first thing in the executable's `@main`, on the main thread;
    /// `MANA_NIO_EXECUTOR=0` leaves Swift's default executor in place.
    @discardableResult
    package static func adoptEventLoopsAsGlobalExecutor() -> Bool {
        guard ProcessInfo.processInfo.environment["MANA_NIO_EXECUTOR"] != "0" else { return false }
        return NIOSingletons.unsafeTryInstallSingletonPosixEventLoopGroupAsConcurrencyGlobalExecutor()
    }
}
