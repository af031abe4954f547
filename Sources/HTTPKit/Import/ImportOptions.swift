import ArgumentParser

/// The flags both `import` commands share (`@OptionGroup`).
package struct ImportOptions: ParsableArguments {
    @Option(name: .long, help: "postgres:// URL of the original database (only read).")
    package var from: String?

    @Flag(help: "Do every read and check, write nothing.")
    package var dryRun = false

    @Flag(help: "Show where the import stands and exit.")
    package var status = false

    @Flag(help: "No progress lines.")
    package var quiet = false

    @Option(help: "Write the report as JSON to this file.")
    package var report: String?

    package init() {}

    package func validate() throws {
        guard status || from != nil else { throw ValidationError("--from is required (or --status)") }
    }

    /// The original database's URL from `--from`.
    package func source() throws -> DatabaseURL {
        do {
            return try DatabaseURL(from ?? "")
        } catch {
            throw ValidationError("--from: \("\(error)".replacingOccurrences(of: "DATABASE_URL", with: "the URL"))")
        }
    }
}
