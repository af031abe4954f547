import Foundation
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

    /// The code pages the process touched go back to the kernel: the advice is taken for the
    /// read-only file mappings, and the file-backed part of RSS falls (what the process runs
    /// next comes back in; the test goes on running).
    @Test func codePagesAreHandedBack() throws {
        func residentFileKB() throws -> Int {
            let status = try String(contentsOfFile: "/proc/self/status", encoding: .utf8)
            let line = try #require(status.split(separator: "\n").first { $0.hasPrefix("RssFile:") })
            return try #require(Int(line.split(separator: " ", omittingEmptySubsequences: true)[1]))
        }
        let before = try residentFileKB()
        let advised = MemoryTrim.releaseCodePages()
        let after = try residentFileKB()
        #expect(advised > 0)
        #expect(after < before, "RssFile \(before) → \(after) kB")
    }
}
#endif
