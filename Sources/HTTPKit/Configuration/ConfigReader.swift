import Foundation

/// Reads typed settings from the environment and collects every problem, so a bad
/// configuration is reported in one message at startup.
///
/// ```swift
/// var reader = ConfigReader(environment: ProcessInfo.processInfo.environment)
/// let port = reader.int(Settings.port, in: 1...65535)
/// try reader.finish()   // throws ConfigurationError listing each bad variable
/// ```
package struct ConfigReader {
    package let environment: [String: String]
    package private(set) var problems: [String] = []
    /// True when `MANA_ENV` is `production`.
    package let isProduction: Bool

    package init(environment: [String: String] = ProcessInfo.processInfo.environment) {
        self.environment = environment
        self.isProduction = environment["MANA_ENV"]?.lowercased() == "production"
    }

    /// The raw value: the variable when set and non-empty, else its default.
    /// In production, a variable marked `refusedInProduction` must not hold its development default.
    package mutating func string(_ variable: EnvironmentVariable) -> String {
        let value = environment[variable.name].flatMap { $0.isEmpty ? nil : $0 } ?? variable.defaultValue ?? ""
        refuseDevelopmentDefault(variable, present: value == variable.defaultValue)
        return value
    }

    /// An optional value: nil when unset or empty and without default.
    package mutating func optionalString(_ variable: EnvironmentVariable) -> String? {
        let value = string(variable)
        return value.isEmpty ? nil : value
    }

    /// A whole number within `range`.
    package mutating func int(_ variable: EnvironmentVariable, in range: ClosedRange<Int>) -> Int {
        let raw = string(variable)
        guard let value = Int(raw.trimmingCharacters(in: .whitespaces)) else {
            problems.append("\(variable.name): '\(raw)' is not a whole number")
            return range.lowerBound
        }
        guard range.contains(value) else {
            problems.append("\(variable.name): \(value) is outside \(range.lowerBound)...\(range.upperBound)")
            return range.lowerBound
        }
        return value
    }

    /// A number of seconds (fractions allowed) within `range`.
    package mutating func seconds(_ variable: EnvironmentVariable, in range: ClosedRange<Double>) -> Duration {
        let raw = string(variable)
        guard let value = Double(raw.trimmingCharacters(in: .whitespaces)), value.isFinite else {
            problems.append("\(variable.name): '\(raw)' is not a number of seconds")
            return .seconds(range.lowerBound)
        }
        guard range.contains(value) else {
            problems.append("\(variable.name): \(raw) is outside \(range.lowerBound)...\(range.upperBound) seconds")
            return .seconds(range.lowerBound)
        }
        return .milliseconds(Int64((value * 1000).rounded()))
    }

    /// A duration (``DurationText``: `7d`, `1h`, `30s`, or seconds) within `range`.
    package mutating func duration(_ variable: EnvironmentVariable, in range: ClosedRange<Duration>) -> Duration {
        let raw = string(variable)
        guard let value = DurationText.parse(raw) else {
            problems.append("\(variable.name): '\(raw)' is not a duration (e.g. 7d, 12h, 30m, 45s)")
            return range.lowerBound
        }
        guard range.contains(value) else {
            problems.append("\(variable.name): \(raw) is outside \(range.lowerBound.secondsText)...\(range.upperBound.secondsText) seconds")
            return range.lowerBound
        }
        return value
    }

    /// A boolean: true/false, 1/0, yes/no, on/off.
    package mutating func bool(_ variable: EnvironmentVariable) -> Bool {
        let raw = string(variable).lowercased()
        switch raw {
        case "true", "1", "yes", "on": return true
        case "false", "0", "no", "off", "": return false
        default:
            problems.append("\(variable.name): '\(raw)' is not a boolean (true or false)")
            return false
        }
    }

    /// A comma-separated list; empty items are dropped.
    package mutating func list(_ variable: EnvironmentVariable) -> [String] {
        let items = string(variable).split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        if let fallback = variable.defaultValue, items.count > 1 {
            refuseDevelopmentDefault(variable, present: items.contains(fallback))
        }
        return items
    }

    private mutating func refuseDevelopmentDefault(_ variable: EnvironmentVariable, present: Bool) {
        if present, variable.refusedInProduction, isProduction {
            problems.append("\(variable.name): the development default is refused in production; set a real value")
        }
    }

    /// An absolute URL with one of `schemes`; a trailing slash is removed.
    package mutating func url(_ variable: EnvironmentVariable, schemes: Set<String> = ["http", "https"]) -> String {
        let raw = string(variable)
        guard let url = URL(string: raw), let scheme = url.scheme?.lowercased(), schemes.contains(scheme),
            scheme == "file" || url.host?.isEmpty == false
        else {
            let allowed = schemes.sorted().map { "\($0)://" }.joined(separator: " or ")
            problems.append("\(variable.name): '\(raw)' is not a \(allowed) URL")
            return raw
        }
        return raw.hasSuffix("/") ? String(raw.dropLast()) : raw
    }

    /// A value from a fixed set of choices.
    package mutating func choice(_ variable: EnvironmentVariable, from choices: [String]) -> String {
        let raw = string(variable).lowercased()
        guard choices.contains(raw) else {
            problems.append("\(variable.name): '\(raw)' is not one of \(choices.joined(separator: ", "))")
            return choices[0]
        }
        return raw
    }

    /// Records a problem found by the caller's own validation.
    package mutating func report(_ problem: String) {
        problems.append(problem)
    }

    /// Throws one error listing every problem found so far.
    package func finish() throws {
        if !problems.isEmpty { throw ConfigurationError(problems: problems) }
    }
}

/// A configuration that cannot be used; the message names every bad variable.
package struct ConfigurationError: Error, CustomStringConvertible {
    package init(problems: [String]) { self.problems = problems }
    package let problems: [String]

    package var description: String {
        "invalid configuration:\n" + problems.map { "  - \($0)" }.joined(separator: "\n")
    }
}
