import Foundation

/// What an import run read, wrote and found, printed at the end of the run and written as
/// JSON with `--report FILE`.
///
/// Violations break an invariant (or a row could not be placed): the run exits with status
/// 1. Notices list data kept only in the `legacy_*` schema, or things an operator should
/// look at before going live; they do not fail the run.
package struct ImportReport: Codable, Sendable {
    /// One finding: what was checked, how often it occurred, and a few examples.
    package struct Finding: Codable, Sendable, Equatable {
        package var check: String
        package var count: Int
        package var examples: [String]

        package init(check: String, count: Int, examples: [String] = []) {
            self.check = check
            self.count = count
            self.examples = examples
        }
    }

    /// Rows of one table: read from the original, written to ours, reported instead.
    package struct TableCount: Codable, Sendable, Equatable {
        package var table: String
        package var read: Int
        package var written: Int
        package var reported: Int

        package init(table: String, read: Int, written: Int, reported: Int) {
            self.table = table
            self.read = read
            self.written = written
            self.reported = reported
        }
    }

    package var service: String
    package var source: String
    package var dryRun: Bool
    package var startedAt: String
    package var seconds: Double = 0
    /// Rows read from the original in this run, and rows written to ours in this run.
    package var rowsRead = 0
    package var rowsWritten = 0
    package var rowsPerSecond = 0.0
    /// Rows of each table over the whole import so far (all runs).
    package var tables: [TableCount] = []
    package var violations: [Finding] = []
    package var notices: [Finding] = []
    /// Figures worth showing (cut-over cursor, tie groups, largest shift, ...).
    package var facts: [String: String] = [:]

    package init(service: String, source: String, dryRun: Bool) {
        self.service = service
        self.source = source
        self.dryRun = dryRun
        self.startedAt = Timestamp.iso8601(Date())
    }

    /// True when nothing was violated.
    package var isClean: Bool { violations.allSatisfy { $0.count == 0 } }

    /// Adds a violation when `count` > 0.
    package mutating func violation(_ check: String, count: Int, examples: [String] = []) {
        if count > 0 { violations.append(Finding(check: check, count: count, examples: Array(examples.prefix(10)))) }
    }

    /// Adds a notice when `count` > 0.
    package mutating func notice(_ check: String, count: Int, examples: [String] = []) {
        if count > 0 { notices.append(Finding(check: check, count: count, examples: Array(examples.prefix(10)))) }
    }

    /// The report as the text printed at the end of a run.
    package var text: String {
        var lines: [String] = []
        lines.append("\(service) import\(dryRun ? " (dry run: nothing written)" : "") from \(source)")
        lines.append(String(format: "this run: %d rows read, %d rows written in %.1f s (%.0f rows/s)", rowsRead, rowsWritten, seconds, rowsPerSecond))
        if !tables.isEmpty {
            lines.append("tables (whole import): read = written + reported")
            for table in tables {
                let mark = table.read == table.written + table.reported ? "" : "   <-- MISMATCH"
                lines.append("  \(table.table): \(table.read) = \(table.written) + \(table.reported)\(mark)")
            }
        }
        for key in facts.keys.sorted() { lines.append("\(key): \(facts[key]!)") }
        if notices.isEmpty {
            lines.append("notices: none")
        } else {
            lines.append("notices (kept in the legacy schema or to review):")
            for notice in notices { lines.append(contentsOf: Self.render(notice)) }
        }
        if isClean {
            lines.append("violations: none")
        } else {
            lines.append("VIOLATIONS:")
            for violation in violations { lines.append(contentsOf: Self.render(violation)) }
        }
        return lines.joined(separator: "\n")
    }

    private static func render(_ finding: Finding) -> [String] {
        ["  \(finding.check): \(finding.count)"] + finding.examples.map { "      \($0)" }
    }

    /// Writes the report as JSON to `path`.
    package func write(to path: String) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try encoder.encode(self).write(to: URL(fileURLWithPath: path))
    }
}
