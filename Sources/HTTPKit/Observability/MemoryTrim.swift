#if canImport(Glibc)
import Glibc
#endif
import NIOPosix

/// Gives the heap's free pages back to the kernel (glibc's `malloc_trim`).
///
/// glibc keeps memory freed by the process in its arenas; after a burst of large requests
/// (twenty concurrent pushes of 4,000 changes) mana-sync's RSS stayed at 311 MB although
/// nearly all of it was free: one `malloc_trim(0)` brought it back to 45 MB. A container
/// with a 64 MB limit counts that RSS. The trim runs on NIO's blocking pool, never on Swift
/// Concurrency's threads.
package enum MemoryTrim {
    #if canImport(Glibc)
    /// glibc's `int malloc_trim(size_t pad)`, which Swift's Glibc module does not export:
    /// looked up once, called with the C convention.
    private static let mallocTrim: (@convention(c) (Int) -> Int32)? = {
        guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "malloc_trim") else { return nil }
        return unsafeBitCast(symbol, to: (@convention(c) (Int) -> Int32).self)
    }()
    #endif

    /// Trims now; true when memory was given back.
    @discardableResult
    package static func now() async -> Bool {
        #if canImport(Glibc)
        guard let trim = mallocTrim else { return false }
        return (try? await NIOThreadPool.singleton.runIfActive { trim(0) == 1 }) ?? false
        #else
        false
        #endif
    }

    /// A background service trimming every `interval`.
    package static func service(every interval: Duration, metrics: ServiceMetrics) -> PeriodicService {
        PeriodicService(every: interval) {
            let start = ContinuousClock.now
            let released = await now()
            metrics.record("process_memory_trim_seconds", [], duration: ContinuousClock.now - start)
            if released { metrics.count("process_memory_trims_released_total") }
        }
    }
}
