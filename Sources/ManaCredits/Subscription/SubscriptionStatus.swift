import Foundation
import HTTPKit

/// One user's Cloud Sync subscription as stored.
struct Subscription: Sendable {
    var userID: String
    var active = false
    var interval = BillingInterval.monthly
    var amountCharged: Int64 = 0
    var activatedAt: Date?
    var nextChargeAt: Date?
    var pausedAt: Date?
    var isGifted = false
    var giftedBy: String?
    var giftedAt: Date?

    /// A user with no row: inactive, monthly, nothing scheduled.
    init(userID: String) {
        self.userID = userID
    }

    /// `{active, interval, nextChargeAt, pausedAt, gifted}`: what users, mana-sync and the
    /// clients see.
    var status: JSONValue {
        [
            "active": .bool(active), "interval": .string(interval.rawValue), "nextChargeAt": Self.time(nextChargeAt),
            "pausedAt": Self.time(pausedAt), "gifted": .bool(isGifted),
        ]
    }

    /// The status plus the audit columns, for admins.
    var adminStatus: JSONValue {
        guard case .object(var fields) = status else { return status }
        fields["userId"] = .string(userID)
        fields["amountCharged"] = .number(Double(amountCharged))
        fields["activatedAt"] = Self.time(activatedAt)
        fields["giftedBy"] = giftedBy.map(JSONValue.string) ?? .null
        fields["giftedAt"] = Self.time(giftedAt)
        return .object(fields)
    }

    static func time(_ date: Date?) -> JSONValue {
        date.map { .string(Timestamp.iso8601($0)) } ?? .null
    }
}
