/// The kinds of credit (money in) the ledger records.
enum CreditKind: String, Sendable {
    case purchase, refund, gift, grant
}
