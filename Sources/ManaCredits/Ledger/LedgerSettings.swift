import HTTPKit

/// Limits of the internal ledger routes.
struct LedgerSettings: Sendable {
    /// Most credits one `POST /api/v1/internal/credits/refund` may grant.
    var refundMaxAmount: Int64 = 100_000

    enum Variables {
        static let refundMaxAmount = EnvironmentVariable(
            "REFUND_MAX_AMOUNT", default: "100000", help: "most credits one internal refund may grant (above: 400 naming the cap)")
        static let all = [refundMaxAmount]
    }

    init() {}

    init(reading reader: inout ConfigReader) {
        refundMaxAmount = Int64(reader.int(Variables.refundMaxAmount, in: 1...Int(LedgerInput.maximumAmount)))
    }
}
