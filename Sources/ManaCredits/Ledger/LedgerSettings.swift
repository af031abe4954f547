import HTTPKit

/// Limits of the internal ledger routes.
struct LedgerSettings: Sendable {
    /// Most credits one `POST /api/v1/internal/credits/refund` may grant.
    var refundMaxAmount: Int64 = 100_000
    /// Time between sweeps of expired reservations in this process; nil switches them off.
    var reservationSweepInterval: Duration? = .seconds(60)
    /// Debit statements of this process at once; debits arriving while all run wait and go
    /// together in one transaction (``StatementBatches``; 0: every debit alone).
    var debitLanes = 2

    enum Variables {
        static let refundMaxAmount = EnvironmentVariable(
            "REFUND_MAX_AMOUNT", default: "100000", help: "most credits one internal refund may grant (above: 400 naming the cap)")
        static let reservationSweepInterval = EnvironmentVariable(
            "RESERVATION_SWEEP_INTERVAL", default: "60",
            help: "seconds between refunds of expired reservations in this process (safe on several replicas); 0 switches it off")
        static let debitLanes = EnvironmentVariable(
            "CREDITS_DEBIT_LANES", default: "2",
            help: "debit statements at once; debits arriving meanwhile go together in one transaction (0: each alone; docs/credits.md)")
        static let all = [refundMaxAmount, reservationSweepInterval, debitLanes]
    }

    init() {}

    init(reading reader: inout ConfigReader) {
        refundMaxAmount = Int64(reader.int(Variables.refundMaxAmount, in: 1...Int(LedgerInput.maximumAmount)))
        let sweep = reader.seconds(Variables.reservationSweepInterval, in: 0...86_400)
        reservationSweepInterval = sweep == .zero ? nil : sweep
        debitLanes = reader.int(Variables.debitLanes, in: 0...500)
    }
}
