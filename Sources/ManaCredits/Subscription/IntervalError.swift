import HTTPKit

/// The 400s for a bad `interval`.
enum IntervalError {
    static let missingInterval = APIError.badRequest("interval is required: monthly, quarterly or yearly", field: "interval")
    static func badInterval(_ value: String) -> APIError {
        APIError.badRequest("interval must be monthly, quarterly or yearly, not '\(value.prefix(40))'", field: "interval")
    }
}
