import HTTPKit
import Testing

#if canImport(Glibc)
import Glibc

@Suite struct MemoryTrimTests {
    /// Memory freed from the heap goes back to the kernel: glibc's trim is found and reports
    /// that it released some (it returns 0 when there was nothing to give back or no trim).
    @Test func freedHeapMemoryIsGivenBack() async {
        // 64 MB in blocks under glibc's mmap threshold, so they come from the heap, then freed.
        let blocks = (0..<640).map { _ -> UnsafeMutableRawPointer in
            let block = malloc(100_000)!
            memset(block, 1, 100_000)
            return block
        }
        blocks.reversed().forEach { free($0) }
        #expect(await MemoryTrim.now())
    }
}
#endif
