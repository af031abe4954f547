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
    struct Status: Encodable, Sendable {
        let active: Bool
        let interval: String
        @NullWhenAbsent var nextChargeAt: Date?
        @NullWhenAbsent var pausedAt: Date?
        let gifted: Bool
    }

    /// The audit columns an admin sees beside the status.
    struct AuditColumns: Encodable, Sendable {
        let userId: String
        let amountCharged: Int64
        @NullWhenAbsent var activatedAt: Date?
        @NullWhenAbsent var giftedBy: String?
        @NullWhenAbsent var giftedAt: Date?
    }

    var status: Status {
        Status(active: active, interval: interval.rawValue, nextChargeAt: nextChargeAt, pausedAt: pausedAt, gifted: isGifted)
    }

    /// The status plus the audit columns, for admins.
    var adminStatus: Merged<Status, AuditColumns> {
        Merged(
            status,
            AuditColumns(userId: userID, amountCharged: amountCharged, activatedAt: activatedAt, giftedBy: giftedBy, giftedAt: giftedAt))
    }
}
