import Hummingbird

/// Typed query parameters with 400 errors naming the parameter.
package enum QueryParameter {
    /// A whole number within `range`; `fallback` when absent.
    package static func integer(_ request: Request, _ name: String, default fallback: Int, in range: ClosedRange<Int>) throws -> Int {
        guard let text = request.uri.queryParameters[name[...]] else { return fallback }
        guard let value = Int(String(text)), range.contains(value) else {
            throw APIError.badRequest("\(name) must be a whole number from \(range.lowerBound) to \(range.upperBound)", field: name)
        }
        return value
    }
}
