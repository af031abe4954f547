import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// A program started by a test (one of our executables), with its output in a file.
package final class ChildProcess: Sendable {
    package let pid: pid_t
    package let outputPath: String

    /// The folder holding the built executables (next to the test bundle).
    package static var productsDirectory: String {
        URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().path
    }

    /// Starts `executable` (a product name or a path) with `environment` added to this process's.
    package init(_ executable: String, _ arguments: [String] = [], environment: [String: String]) throws {
        let path = executable.hasPrefix("/") ? executable : Self.productsDirectory + "/" + executable
        guard FileManager.default.isExecutableFile(atPath: path) else {
            throw ClusterError("\(path) is missing: build the products first (swift build)")
        }
        outputPath = NSTemporaryDirectory() + "/mana-child-\(UUID().uuidString).log"
        let merged = ProcessInfo.processInfo.environment.merging(environment) { _, new in new }
        let pid = try spawnProcess(path, arguments, environment: merged, outputPath: outputPath)
        self.pid = pid
    }

    /// Everything the program printed so far.
    package var output: String {
        (try? String(contentsOfFile: outputPath, encoding: .utf8)) ?? ""
    }

    /// Sends a signal (SIGTERM by default).
    package func signal(_ signal: Int32 = SIGTERM) {
        kill(pid, signal)
    }

    /// Waits up to `timeout` for the program to exit; returns its exit status, or nil if it
    /// is still running.
    package func waitForExit(timeout: Duration) async throws -> Int32? {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            var status: Int32 = 0
            let result = waitpid(pid, &status, WNOHANG)
            if result == pid {
                return (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
            }
            try await Task.sleep(for: .milliseconds(20))
        }
        return nil
    }

    deinit {
        var status: Int32 = 0
        if waitpid(pid, &status, WNOHANG) == 0 {
            kill(pid, SIGKILL)
            waitpid(pid, &status, 0)
        }
        unlink(outputPath)
    }
}

/// Makes a spawned child start with only descriptors 0–2: without this it inherits every
/// socket of the test process (SwiftNIO does not open them close-on-exec), and a PostgreSQL
/// started after a test server keeps that server's port listening after the server stops.
func closeInheritedDescriptors(_ actions: inout posix_spawn_file_actions_t) {
    typealias CloseFrom = @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, Int32) -> Int32
    if let symbol = dlsym(nil, "posix_spawn_file_actions_addclosefrom_np") {
        _ = unsafeBitCast(symbol, to: CloseFrom.self)(&actions, 3)
        return
    }
    // Older C libraries: mark every open descriptor close-on-exec instead.
    let open = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd")) ?? []
    for fd in open.compactMap(Int32.init) where fd > 2 {
        _ = fcntl(fd, F_SETFD, fcntl(fd, F_GETFD) | FD_CLOEXEC)
    }
}
