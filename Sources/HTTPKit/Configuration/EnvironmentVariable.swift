/// One documented environment variable: its name, default and meaning.
///
/// Services list theirs once; the same list drives `--help` and the README table.
package struct EnvironmentVariable: Sendable {
    package let name: String
    /// The value used when the variable is unset; nil means none (optional or required).
    package let defaultValue: String?
    package let help: String
    /// A development-only default that `MANA_ENV=production` refuses.
    package let refusedInProduction: Bool

    package init(_ name: String, default defaultValue: String? = nil, help: String, refusedInProduction: Bool = false) {
        self.name = name
        self.defaultValue = defaultValue
        self.help = help
        self.refusedInProduction = refusedInProduction
    }

    /// A help text listing every variable, its default and meaning.
    package static func helpText(_ variables: [EnvironmentVariable]) -> String {
        let width = (variables.map(\.name.count).max() ?? 0) + 2
        var lines = ["Environment variables:"]
        for variable in variables {
            let padded = variable.name.padding(toLength: width, withPad: " ", startingAt: 0)
            let fallback = variable.defaultValue.map { $0.isEmpty ? " (default: empty)" : " (default: \($0))" } ?? ""
            lines.append("  \(padded)\(variable.help)\(fallback)")
        }
        return lines.joined(separator: "\n")
    }
}
