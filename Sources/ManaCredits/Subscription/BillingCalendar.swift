import Foundation

/// A Cloud Sync billing interval and its price in credits.
enum BillingInterval: String, Sendable, CaseIterable {
    case monthly, quarterly, yearly

    var months: Int {
        switch self {
        case .monthly: 1
        case .quarterly: 3
        case .yearly: 12
        }
    }

    /// Credits charged per interval (1 credit = 1 cent).
    var price: Int64 {
        switch self {
        case .monthly: 30
        case .quarterly: 90
        case .yearly: 360
        }
    }

    /// Parses a request's `interval`, naming the field when it is not one of the three.
    static func parse(_ value: String?, default fallback: BillingInterval? = nil) throws -> BillingInterval {
        guard let value else {
            if let fallback { return fallback }
            throw IntervalError.missingInterval
        }
        guard let interval = BillingInterval(rawValue: value) else { throw IntervalError.badInterval(value) }
        return interval
    }
}

/// Anchored billing dates in UTC: the n-th charge is n intervals after the anchor (the
/// activation), on the anchor's day of month, clamped to the month's last day. Computing
/// every date from the anchor (not from the previous date) keeps Jan 31 → Feb 29 → Mar 31.
enum BillingCalendar {
    private static let utc: Calendar = {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "UTC")!
        return calendar
    }()

    /// `anchor` plus `months` calendar months, clamped to the last day of the target month.
    static func adding(months: Int, to anchor: Date) -> Date {
        utc.date(byAdding: .month, value: months, to: anchor)!
    }

    /// Whole months from `anchor` to `date` by calendar month (day of month ignored).
    static func monthsBetween(_ anchor: Date, _ date: Date) -> Int {
        let a = utc.dateComponents([.year, .month], from: anchor)
        let d = utc.dateComponents([.year, .month], from: date)
        return (d.year! - a.year!) * 12 + (d.month! - a.month!)
    }

    /// After a charge due at `due`: the next due date and the (possibly new) anchor.
    ///
    /// Normally one interval after `due`, counted from the anchor. A subscription overdue by
    /// more than one period is charged once: it is re-anchored at `now` and next charged one
    /// interval from now.
    static func next(anchor: Date, due: Date, interval: BillingInterval, now: Date) -> (next: Date, anchor: Date) {
        let next = adding(months: monthsBetween(anchor, due) + interval.months, to: anchor)
        if next > now { return (next, anchor) }
        return (adding(months: interval.months, to: now), now)
    }
}
