import Foundation

/// The process's own figures, sampled from `/proc/self` each time `/metrics` is scraped
/// (Linux; elsewhere nothing is written): the names node and Go exporters use, so stock
/// dashboards and the container-limit alert read them as usual.
///
/// - `process_resident_memory_bytes`, `process_virtual_memory_bytes` (gauges)
/// - `process_cpu_seconds_total` (user + system CPU time, counter)
/// - `process_open_fds`, `process_max_fds`, `process_start_time_seconds` (gauges)
/// - `process_memory_limit_bytes`: the container's memory limit (cgroup v2 `memory.max`, or
///   v1 `memory.limit_in_bytes`); 0 when there is none. The RSS alert divides by it.
package enum ProcessMetrics {
    /// Writes the current figures into `metrics`.
    package static func sample(into metrics: ServiceMetrics) {
        #if os(Linux)
        guard let stat = try? String(contentsOfFile: "/proc/self/stat", encoding: .utf8),
            let close = stat.lastIndex(of: ")")
        else { return }
        // Fields after the command name (which may hold spaces): field 3 (state) is index 0.
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        guard fields.count > 22, let utime = Double(fields[11]), let stime = Double(fields[12]),
            let startTicks = Double(fields[19]), let virtual = Double(fields[20]), let residentPages = Double(fields[21])
        else { return }
        let ticks = Double(sysconf(Int32(_SC_CLK_TCK)))
        let pageSize = Double(sysconf(Int32(_SC_PAGESIZE)))
        metrics.set("process_resident_memory_bytes", to: residentPages * pageSize)
        metrics.set("process_virtual_memory_bytes", to: virtual)
        metrics.advance("process_cpu_seconds_total", to: (utime + stime) / ticks)
        if let boot = bootTime { metrics.set("process_start_time_seconds", to: boot + startTicks / ticks) }
        if let open = try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd") {
            metrics.set("process_open_fds", to: Double(open.count))
        }
        // "Max open files  <soft>  <hard>  files" in /proc/self/limits.
        if let limits = try? String(contentsOfFile: "/proc/self/limits", encoding: .utf8),
            let line = limits.split(separator: "\n").first(where: { $0.hasPrefix("Max open files") }),
            let soft = line.dropFirst("Max open files".count).split(separator: " ").first.flatMap({ Double($0) })
        {
            metrics.set("process_max_fds", to: soft)
        }
        metrics.set("process_memory_limit_bytes", to: memoryLimit ?? 0)
        #endif
    }

    /// The cgroup memory limit of this process, read once; nil without one.
    private static let memoryLimit: Double? = {
        for path in ["/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"] {
            guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { continue }
            // "max" (v2) or a page-rounded 2^63 (v1) mean no limit.
            guard let limit = Double(text.trimmingCharacters(in: .whitespacesAndNewlines)), limit < 1e18 else { return nil }
            return limit
        }
        return nil
    }()

    /// The machine's boot time (`btime` in /proc/stat), read once.
    private static let bootTime: Double? = {
        guard let text = try? String(contentsOfFile: "/proc/stat", encoding: .utf8) else { return nil }
        for line in text.split(separator: "\n") where line.hasPrefix("btime ") {
            return Double(line.dropFirst(6).trimmingCharacters(in: .whitespaces))
        }
        return nil
    }()
}
