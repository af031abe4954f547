import Foundation

/// Progress of a long import on standard error: rows done, rows per second and the time
/// left, one line every `interval` (nothing with `quiet`).
package struct ImportProgressMeter: Sendable {
    package let label: String
    package var total: Int
    package let quiet: Bool
    package let interval: Duration
    package private(set) var done = 0
    private let started = ContinuousClock.now
    private var lastLine = ContinuousClock.now

    package init(label: String, total: Int, quiet: Bool, interval: Duration = .seconds(3)) {
        self.label = label
        self.total = total
        self.quiet = quiet
        self.interval = interval
    }

    /// Rows per second since the start.
    package var rate: Double {
        let seconds = (ContinuousClock.now - started).inSeconds
        return seconds > 0 ? Double(done) / seconds : 0
    }

    /// Seconds since the start.
    package var elapsed: Double { (ContinuousClock.now - started).inSeconds }

    /// Counts `rows` more and prints a line when the interval has passed.
    package mutating func advance(by rows: Int) {
        done += rows
        guard !quiet, ContinuousClock.now - lastLine >= interval else { return }
        lastLine = ContinuousClock.now
        printLine()
    }

    /// Prints the final line (unless quiet).
    package func finish() {
        guard !quiet else { return }
        printLine(final: true)
    }

    private func printLine(final: Bool = false) {
        let rate = self.rate
        var line = "\(label): \(done)"
        if total > 0 { line += "/\(total) rows (\(Int(Double(done) * 100 / Double(max(total, 1))))%)" } else { line += " rows" }
        line += String(format: ", %.0f rows/s", rate)
        if final {
            line += String(format: ", done in %.1f s", elapsed)
        } else if rate > 0, total > done {
            line += String(format: ", ETA %.0f s", Double(total - done) / rate)
        }
        FileHandle.standardError.write(Data((line + "\n").utf8))
    }
}
