import HTTPKit
import HTTPTypes
import Hummingbird
import SharedAuth

/// What the sync routes read from a request the same way: the app id, the client id and a
/// `since` cursor, each checked with the 400 that names it.
enum SyncRequest {
    /// 1–64 characters of `A–Z a–z 0–9 _ . -`, starting with a letter or digit.
    static func appID(_ context: AppRequestContext) throws -> String {
        try validAppID(context.parameters.get("appId") ?? "")
    }

    static func validAppID(_ appID: String) throws -> String {
        let bytes = Array(appID.utf8)
        func alnum(_ b: UInt8) -> Bool { (48...57).contains(b) || (65...90).contains(b) || (97...122).contains(b) }
        guard (1...64).contains(bytes.count), alnum(bytes[0]), bytes.allSatisfy({ alnum($0) || $0 == 95 || $0 == 46 || $0 == 45 }) else {
            throw APIError.badRequest("appId must be 1-64 characters of A-Z a-z 0-9 _ . - starting with a letter or digit", field: "appId")
        }
        return appID
    }

    /// The client id from `X-Client-Id`, else the body's `clientId`; required, ≤ 200 characters.
    static func clientID(header: String?, body: JSONValue?) throws -> String {
        let value = header.flatMap { $0.isEmpty ? nil : $0 } ?? body?.stringValue
        guard let value, !value.isEmpty else {
            throw APIError.badRequest("a client id is required (X-Client-Id header or clientId)", field: "clientId")
        }
        guard value.count <= 200 else { throw APIError.badRequest("clientId must be at most 200 characters", field: "clientId") }
        return value
    }

    /// A `since` cursor: any RFC 3339 timestamp; absent means the epoch.
    static func cursor(_ value: JSONValue?) throws -> Int64 {
        if value == nil || value == .null { return 0 }
        guard let text = value?.stringValue, let micros = Timestamp.parseMicroseconds(text) else {
            throw APIError.badRequest("since must be an RFC 3339 timestamp", field: "since")
        }
        return micros
    }
}

extension HTTPField.Name {
    static var clientID: Self { .init("X-Client-Id")! }
    static var idempotencyKey: Self { .init("Idempotency-Key")! }
}
