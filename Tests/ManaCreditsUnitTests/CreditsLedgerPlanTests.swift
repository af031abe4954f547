import Testing

@testable import ManaCredits

/// How the import orders and verifies one user's original ledger (no database).
struct CreditsLedgerPlanTests {
    func row(_ id: String, _ amount: Int64, _ before: Int64, status: String = "completed", at time: String) -> CreditsLedgerPlan.Original {
        .init(id: id, status: status, amount: amount, before: before, after: before + amount, createdAt: time, hash: "h-\(id)")
    }

    @Test func followsTheChainWhereCreatedAtTiesAreMisordered() {
        let plan = CreditsLedgerPlan(
            userID: "u",
            originals: [row("a", 100, 0, at: "1"), row("c", -20, 70, at: "2"), row("b", -30, 100, at: "3"), row("d", -5, 50, at: "4")],
            balance: .init(balance: 45, earned: 100, spent: 55), placed: [], accepted: nil)
        #expect(plan.decision == .import)
        #expect(plan.chain.map(\.id) == ["a", "b", "c", "d"])
        #expect(plan.needed == nil && plan.adjustmentRows.isEmpty)
    }

    @Test func aBalanceThatDiffersFromTheLedgerHoldsTheUserBackUntilTheSameAdjustmentIsAccepted() throws {
        let originals = [row("a", 100, 0, at: "1")]
        let balance = CreditsLedgerPlan.BalanceRow(balance: 120, earned: 120, spent: 0)
        let held = CreditsLedgerPlan(userID: "u", originals: originals, balance: balance, placed: [], accepted: nil)
        #expect(held.decision == .held)
        let entry = try #require(held.needed)
        #expect(entry.adjustments.map(\.amount) == [20])
        #expect(entry.adjustments.first?.afterTransaction == "a")

        let accepted = CreditsLedgerPlan(userID: "u", originals: originals, balance: balance, placed: [], accepted: entry)
        #expect(accepted.decision == .import && accepted.adjusted)
        #expect(accepted.adjustmentRows.map { "\($0.before)>\($0.after) @\($0.position)" } == ["100>120 @2"])

        var edited = entry
        edited.adjustments[0].amount = 25
        #expect(CreditsLedgerPlan(userID: "u", originals: originals, balance: balance, placed: [], accepted: edited).decision == .held)
    }

    @Test func aBrokenChainNeedsAnAdjustmentBeforeTheRowWhereItBreaks() {
        let plan = CreditsLedgerPlan(
            userID: "u", originals: [row("a", 100, 0, at: "1"), row("b", -10, 80, at: "2")],
            balance: .init(balance: 70, earned: 100, spent: 30), placed: [], accepted: nil)
        #expect(plan.decision == .held)
        #expect(plan.needed?.adjustments.map { "\($0.beforeTransaction ?? "end") \($0.amount)" } == ["b -20"])
    }

    @Test func aNewRunAppendsAfterWhatWasImportedAndRefusesChangedRows() {
        let placed = [CreditsLedgerPlan.Placed(id: "a", status: "completed", amount: 100, after: 100, isAdjustment: false, hash: "h-a")]
        let next = CreditsLedgerPlan(
            userID: "u", originals: [row("a", 100, 0, at: "1"), row("b", -10, 100, at: "2")],
            balance: .init(balance: 90, earned: 100, spent: 10), placed: placed, accepted: nil)
        #expect(next.decision == .import)
        #expect(next.chain.map(\.id) == ["b"])

        let changed = CreditsLedgerPlan(
            userID: "u", originals: [.init(id: "a", status: "completed", amount: 100, before: 0, after: 100, createdAt: "1", hash: "other")],
            balance: .init(balance: 100, earned: 100, spent: 0), placed: placed, accepted: nil)
        #expect(changed.decision == .held)
        #expect(changed.reasons.first?.contains("changed in the original") == true)
    }

    @Test func cancelledAndZeroRowsHaveNoPlaceAndDoNotBreakTheChain() {
        let plan = CreditsLedgerPlan(
            userID: "u",
            originals: [row("a", 100, 0, at: "1"), row("x", -10, 100, status: "cancelled", at: "2"), row("z", 0, 100, at: "3"), row("b", -10, 100, at: "4")],
            balance: .init(balance: 90, earned: 100, spent: 10), placed: [], accepted: nil)
        #expect(plan.decision == .import)
        #expect(plan.chain.map(\.id) == ["a", "b"])
    }
}
