import Foundation
import NIOCore
import NIOPosix

extension ServiceRuntime {
    /// Makes the NIO event loops (which already run every socket and PostgreSQL connection)
    /// Swift Concurrency's global executor, so an `await` on I/O resumes without a hop
    /// between the concurrency pool's threads and an event loop's. Call first thing in the
    /// executable's `@main`, on the main thread. `MANA_NIO_EXECUTOR=1` or `0` overrides the
    /// service's default.
    ///
    /// Measured with `bench/run` (docs/benchmarks.md): it makes small transactions cheaper
    /// (credits use +22%, sync push +3% to +47%) but 1,000-change pulls 25% slower, so
    /// mana-credits turns it on by default and mana-sync does not.
    @discardableResult
    package static func adoptEventLoopsAsGlobalExecutor(byDefault: Bool) -> Bool {
        let setting = ProcessInfo.processInfo.environment["MANA_NIO_EXECUTOR"]
        guard setting.map({ $0 == "1" || $0 == "true" }) ?? byDefault else { return false }
        return NIOSingletons.unsafeTryInstallSingletonPosixEventLoopGroupAsConcurrencyGlobalExecutor()
    }
}
