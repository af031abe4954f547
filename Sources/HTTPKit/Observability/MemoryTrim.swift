#if canImport(Glibc)
import Glibc
#endif
import NIOPosix
import Synchronization

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

    /// A background service trimming every `interval`; its second run (one interval after
    /// the migrations) also hands back the code pages of the start (``releaseCodePages()``).
    package static func service(every interval: Duration, metrics: ServiceMetrics) -> PeriodicService {
        let runs = Atomic<Int>(0)
        return PeriodicService(every: interval) {
            let start = ContinuousClock.now
            let released = await now()
            metrics.record("process_memory_trim_seconds", [], duration: ContinuousClock.now - start)
            if released { metrics.count("process_memory_trims_released_total") }
            if runs.add(1, ordering: .relaxed).newValue == 2 {
                let bytes = (try? await NIOThreadPool.singleton.runIfActive { releaseCodePages() }) ?? 0
                metrics.set("process_code_pages_released_bytes", to: Double(bytes))
            }
        }
    }

    /// Asks the kernel to reclaim the pages of the file mappings (the binary's code, constants
    /// and data, the shared libraries) that this process alone maps: bytes advised.
    ///
    /// RSS counts every code page the process ever touched, and the start touches code that
    /// never runs again (configuration, migrations, route building, the first TLS and ICU
    /// set-up): of mana-sync's 37 MB idle RSS, 34 MB were such file pages and 3.7 MB its heap.
    /// `MADV_PAGEOUT` reclaims those pages as memory pressure would; what runs later faults
    /// back in from the page cache or the file. Idle RSS: 37 → 14.9 MB for mana-sync, 15.6 MB
    /// for mana-credits (docs/benchmarks.md, session 33). Never changes what the process computes: clean file
    /// pages are re-read on access, and anonymous (copied-on-write) pages are not reclaimed
    /// without swap. The binary's writable data mapping counts too: 3.8 of its 4.2 MB were
    /// clean file pages (type metadata read once), and only those are reclaimed; the pages the
    /// process wrote are anonymous. Kernels before 5.4 refuse the advice; nothing happens then.
    @discardableResult
    package static func releaseCodePages() -> Int {
        #if canImport(Glibc)
        guard let maps = fopen("/proc/self/maps", "r") else { return 0 }
        defer { fclose(maps) }
        var line: UnsafeMutablePointer<CChar>?
        var capacity = 0
        defer { free(line) }
        var advised = 0
        while getline(&line, &capacity, maps) > 0, let line {
            // "start-end perms offset dev inode path"
            let fields = String(cString: line).split(separator: " ", omittingEmptySubsequences: true)
            guard fields.count >= 6, fields[1].hasPrefix("r"), fields[4] != "0",
                fields[5].hasPrefix("/")
            else { continue }
            let bounds = fields[0].split(separator: "-")
            guard bounds.count == 2, let start = UInt(bounds[0], radix: 16), let end = UInt(bounds[1], radix: 16), end > start else {
                continue
            }
            if madvise(UnsafeMutableRawPointer(bitPattern: start), Int(end - start), madvisePageOut) == 0 {
                advised += Int(end - start)
            }
        }
        return advised
        #else
        return 0
        #endif
    }

    /// `MADV_PAGEOUT` (Linux 5.4), which Swift's Glibc module may not export.
    private static let madvisePageOut: Int32 = 21
}
