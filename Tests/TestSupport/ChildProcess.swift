import AsyncHTTPClient
import Foundation
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// A program started by a test (one of our executables), with its output in a file.
package final class ChildProcess: Sendable {
    package let pid: pid_t
    package let outputPath: String
    private let exited = Mutex<Int32?>(nil)

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
            if let status = exitStatus { return status }
            try await Task.sleep(for: .milliseconds(20))
        }
        return nil
    }

    /// The exit status (128 + signal when a signal ended it), or nil while it runs.
    package var exitStatus: Int32? {
        exited.withLock { exited in
            if exited == nil {
                var status: Int32 = 0
                if waitpid(pid, &status, WNOHANG) == pid {
                    exited = (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
                }
            }
            return exited
        }
    }

    /// Waits until `GET /ready` on `port` answers 200 (within `timeout`); false when the program
    /// exited or the time ran out, with what the program printed recorded as the reason.
    package func waitUntilReady(port: Int, timeout: Duration = .seconds(60)) async -> Bool {
        let started = ContinuousClock.now
        while ContinuousClock.now - started < timeout {
            if let status = exitStatus {
                print("child \(pid) exited with status \(status) before it was ready; its output:\n\(output.suffix(6000))")
                return false
            }
            let request = HTTPClientRequest(url: "http://127.0.0.1:\(port)/ready")
            if let answer = try? await HTTPClient.shared.execute(request, timeout: .seconds(1)), answer.status == .ok { return true }
            try? await Task.sleep(for: .milliseconds(100))
        }
        print("child \(pid) not ready on port \(port) after \(timeout); its output:\n\(output.suffix(6000))")
        return false
    }

    deinit {
        if exitStatus == nil {
            var status: Int32 = 0
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
