import Foundation
import HTTPKit
import Logging
import NIOConcurrencyHelpers

#if canImport(Glibc)
import Glibc
#endif

/// One throwaway PostgreSQL cluster for the whole test process.
///
/// The first test that asks for a database starts it with the installed server binaries
/// (`pg_config --bindir`, else `PATH`) in a temporary folder, on a free port bound to
/// 127.0.0.1, with `fsync=off`. As root it runs them as the `postgres` user. Each caller
/// gets a fresh database, so tests run in parallel without seeing each other. The cluster
/// stops when the process exits (a watchdog also stops it if the process is killed).
///
/// ```swift
/// let url = try await PostgresCluster.shared.createDatabase()
/// ```
package actor PostgresCluster {
    package static let shared = PostgresCluster()

    /// A cluster of its own (for tests that stop and restart the server); `shared` otherwise.
    package init() {}

    /// The start, shared by every caller (the first one begins it).
    private var starting: Task<Started, any Error>?
    private var started: Started?

    private struct Started {
        let port: Int
        let directory: String
        let binDirectory: String
    }

    /// The port the cluster listens on, starting it if needed.
    package func port() async throws -> Int {
        try await start().port
    }

    /// Creates an empty database and returns its URL.
    package func createDatabase(prefix: String = "test") async throws -> DatabaseURL {
        let cluster = try await start()
        let name = "\(prefix)_\(UUID().uuidString.prefix(12).lowercased().replacingOccurrences(of: "-", with: ""))"
        try await Blocking.run {
            try Self.run(
                cluster.binDirectory + "/createdb", ["-h", "127.0.0.1", "-p", String(cluster.port), "-U", "mana", name],
                asPostgres: false)
        }
        return try DatabaseURL("postgresql://mana@127.0.0.1:\(cluster.port)/\(name)?sslmode=disable")
    }

    /// The folder holding the PostgreSQL binaries (initdb, pg_ctl, psql, pgbench).
    package func binDirectory() async throws -> String {
        try await start().binDirectory
    }

    /// Stops the server (for tests of what happens while the database is down).
    package func stopServer() async throws {
        guard let cluster = started else { return }
        try await Blocking.run {
            try Self.run(cluster.binDirectory + "/pg_ctl", ["stop", "-D", cluster.directory + "/data", "-m", "fast", "-w"], asPostgres: true)
        }
    }

    /// Starts the server again after ``stopServer()``, on the same port.
    package func restartServer() async throws {
        guard let cluster = started else { return }
        try await Blocking.run { try Self.pgCtlStart(cluster.binDirectory, directory: cluster.directory, port: cluster.port) }
    }

    private func start() async throws -> Started {
        if let started { return started }
        let task = starting ?? Task { try await Blocking.run { try Self.startCluster() } }
        starting = task
        let cluster = try await task.value
        started = cluster
        return cluster
    }

    // MARK: Starting and stopping

    private static let runAsPostgres = getuid() == 0

    private static func startCluster() throws -> Started {
        let binDirectory = try findBinDirectory()
        var template = Array("\(NSTemporaryDirectory())/mana-test-pg-XXXXXX".utf8CString)
        guard let pointer = mkdtemp(&template) else { throw ClusterError("cannot create a temporary folder") }
        let directory = String(cString: pointer)
        if runAsPostgres {
            try run("/bin/chown", ["postgres:postgres", directory], asPostgres: false)
        }
        try run(
            binDirectory + "/initdb",
            ["-D", directory + "/data", "-U", "mana", "--auth=trust", "-E", "UTF8", "--no-sync", "--locale=C"],
            asPostgres: true)
        var lastError: (any Error)?
        for _ in 0..<5 {
            let port = try FreePort.find()
            do {
                try pgCtlStart(binDirectory, directory: directory, port: port)
                registerCleanup(binDirectory: binDirectory, directory: directory)
                return Started(port: port, directory: directory, binDirectory: binDirectory)
            } catch {
                lastError = error
            }
        }
        throw lastError ?? ClusterError("could not start PostgreSQL")
    }

    fileprivate static func pgCtlStart(_ binDirectory: String, directory: String, port: Int) throws {
        let options = [
            "-p \(port)", "-c listen_addresses=127.0.0.1", "-c unix_socket_directories=\(directory)",
            "-c fsync=off", "-c synchronous_commit=off", "-c full_page_writes=off",
            "-c max_connections=400", "-c shared_buffers=256MB", "-c log_min_messages=warning",
        ].joined(separator: " ")
        try run(
            binDirectory + "/pg_ctl",
            ["start", "-D", directory + "/data", "-w", "-t", "60", "-l", directory + "/server.log", "-o", options],
            asPostgres: true)
    }

    private static func findBinDirectory() throws -> String {
        var candidates: [String] = []
        if let output = try? capture("/bin/sh", ["-c", "pg_config --bindir 2>/dev/null"]) {
            candidates.append(output.trimmingCharacters(in: .whitespacesAndNewlines))
        }
        candidates += (ProcessInfo.processInfo.environment["PATH"] ?? "").split(separator: ":").map(String.init)
        candidates += (12...18).reversed().map { "/usr/lib/postgresql/\($0)/bin" }
        for candidate in candidates where !candidate.isEmpty {
            let manager = FileManager.default
            if manager.isExecutableFile(atPath: candidate + "/initdb"), manager.isExecutableFile(atPath: candidate + "/pg_ctl"),
                manager.isExecutableFile(atPath: candidate + "/postgres")
            {
                return candidate
            }
        }
        throw ClusterError(
            "PostgreSQL server binaries (initdb, pg_ctl, postgres) were not found via `pg_config --bindir` or PATH. "
                + "Install them, e.g. `apt-get install postgresql postgresql-contrib` on Debian/Ubuntu "
                + "(PostgreSQL 15 or newer), then run the tests again.")
    }

    /// A port nothing listens on, chosen below the kernel's ephemeral range: outgoing
    /// connections take their source ports from that range, so one of them could take a
    /// port handed out from it before the test binds (or re-binds) it.
    fileprivate static func freePort() throws -> Int {
        let range = (try? String(contentsOfFile: "/proc/sys/net/ipv4/ip_local_port_range", encoding: .utf8))?
            .split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\n" }).compactMap { Int($0) } ?? []
        let ceiling = min(range.first ?? 32768, 65536) - 1
        for _ in 0..<200 {
            let port = Int.random(in: 10_000...max(10_001, ceiling))
            // Never the same port twice in one process: two tests could otherwise both find it free.
            guard handedOut.withLockedValue({ $0.insert(port).inserted }) else { continue }
            if canBind(port) { return port }
        }
        throw ClusterError("cannot find a free port below the ephemeral range")
    }

    private static let handedOut = NIOLockedValueBox<Set<Int>>([])

    private static func canBind(_ port: Int) -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        } == 0
    }

    /// Stops the cluster when this process exits, normally (atexit) or not (a watchdog).
    private static func registerCleanup(binDirectory: String, directory: String) {
        let stop = "\(binDirectory)/pg_ctl stop -D \(directory)/data -m immediate >/dev/null 2>&1; rm -rf \(directory)"
        let command = runAsPostgres ? "runuser -u postgres -- sh -c '\(stop)'; rm -rf \(directory)" : stop
        let first = cleanupCommands.withLockedValue { commands -> Bool in
            commands.append(command)
            return commands.count == 1
        }
        if first {
            atexit {
                for command in cleanupCommands.withLockedValue({ $0 }) {
                    _ = try? PostgresCluster.run("/bin/sh", ["-c", command], asPostgres: false)
                }
            }
        }
        let watchdog = "while kill -0 \(getpid()) 2>/dev/null; do sleep 1; done; \(command)"
        _ = try? spawn("/bin/sh", ["-c", watchdog], outputPath: "/dev/null")
    }

    // MARK: Processes

    @discardableResult
    fileprivate static func run(_ executable: String, _ arguments: [String], asPostgres: Bool) throws -> String {
        if asPostgres, runAsPostgres {
            return try capture("/usr/sbin/runuser", ["-u", "postgres", "--", executable] + arguments)
        }
        return try capture(executable, arguments)
    }

    /// Runs a program to completion with posix_spawn and waitpid, output to a file.
    /// (Foundation's `Process` was seen to miss the exit of `runuser` and hang.)
    private static func capture(_ executable: String, _ arguments: [String]) throws -> String {
        let outputPath = NSTemporaryDirectory() + "/mana-test-cmd-\(UUID().uuidString).log"
        defer { unlink(outputPath) }
        let pid = try spawn(executable, arguments, outputPath: outputPath)
        var status: Int32 = 0
        while waitpid(pid, &status, 0) == -1 {
            guard errno == EINTR else { throw ClusterError("waiting for \(executable) failed: errno \(errno)") }
        }
        let text = (try? String(contentsOfFile: outputPath, encoding: .utf8)) ?? ""
        let exitCode = (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
        guard exitCode == 0 else {
            throw ClusterError("\((executable as NSString).lastPathComponent) \(arguments.first ?? "") failed (\(exitCode)): \(text)")
        }
        return text
    }

    /// Starts a program with stdin from /dev/null and stdout/stderr to `outputPath`.
    fileprivate static func spawn(_ executable: String, _ arguments: [String], outputPath: String) throws -> pid_t {
        try spawnProcess(executable, arguments, environment: nil, outputPath: outputPath)
    }
}

/// Starts a program with stdin from /dev/null, stdout and stderr to `outputPath`, and no
/// other descriptor of this process; `environment` nil keeps this process's environment.
func spawnProcess(_ executable: String, _ arguments: [String], environment: [String: String]?, outputPath: String) throws -> pid_t {
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
    posix_spawn_file_actions_addopen(&actions, 1, outputPath, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
    posix_spawn_file_actions_adddup2(&actions, 1, 2)
    // Nothing else of this process (listening sockets of servers under test above all) leaks into the child.
    closeInheritedDescriptors(&actions)
    let argv = ([executable] + arguments).map { strdup($0) } + [nil]
    let env = environment.map { $0.map { strdup("\($0.key)=\($0.value)") } + [nil] }
    defer {
        argv.forEach { free($0) }
        env?.forEach { free($0) }
    }
    var pid: pid_t = 0
    let result = env.map { posix_spawn(&pid, executable, &actions, nil, argv, $0) } ?? posix_spawn(&pid, executable, &actions, nil, argv, environ)
    guard result == 0 else { throw ClusterError("cannot start \(executable): error \(result)") }
    return pid
}

private let cleanupCommands = NIOLockedValueBox<[String]>([])

/// Why the test cluster could not be started or used.
package struct ClusterError: Error, CustomStringConvertible {
    package let description: String
    package init(_ description: String) { self.description = description }
}

/// A free TCP port on 127.0.0.1 (bound, read and released; a race with another process is possible but rare).
package enum FreePort {
    package static func find() throws -> Int { try PostgresCluster.freePort() }
}
