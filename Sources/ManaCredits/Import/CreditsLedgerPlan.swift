/// What the import does with one user's ledger (spec §4, invariants 2 and 3): the original's
/// new transactions in chain order, or why the user is held back, and the adjustments a
/// reviewer may accept.
///
/// The chain is followed, not sorted: `created_at` is the transaction's start, so rows of one
/// user that started close together may have committed in the other order. From the rows
/// sorted by (`created_at`, `id`), the next row is the first of the next few whose
/// `balance_before` is the running balance; a row that matches none is a break.
struct CreditsLedgerPlan: Sendable {
    /// An original transaction as the plan needs it.
    struct Original: Sendable {
        let id: String
        let status: String
        let amount: Int64
        let before: Int64
        let after: Int64
        let createdAt: String
        let hash: String
    }

    /// A transaction already in our ledger (earlier runs), in `seq` order.
    struct Placed: Sendable {
        let id: String
        let status: String
        let amount: Int64
        let after: Int64
        let isAdjustment: Bool
        let hash: String?
    }

    /// The original balance row.
    struct BalanceRow: Sendable {
        let balance: Int64
        let earned: Int64
        let spent: Int64
    }

    /// One reviewed adjustment row to insert.
    struct AdjustmentRow: Sendable {
        let systemKey: String
        let amount: Int64
        let before: Int64
        let after: Int64
        let reason: String
        let createdAt: String?
        let position: Int
    }

    enum Decision: String, Sendable { case `import`, held }

    var decision = Decision.import
    var reasons: [String] = []
    /// Original transaction ids to place, with their position in the user's insert.
    var chain: [(id: String, position: Int)] = []
    var adjustmentRows: [AdjustmentRow] = []
    /// The entry a reviewer must accept (nil: none needed).
    var needed: CreditsAdjustments.Entry?
    var adjusted = false

    /// How far ahead of the running balance's row the chain looks for its successor.
    static let window = 32

    init(
        userID: String, originals: [Original], balance: BalanceRow?, placed: [Placed], accepted: CreditsAdjustments.Entry?
    ) {
        var blockers: [String] = []
        let byID = Dictionary(originals.map { ($0.id, $0) }, uniquingKeysWith: { first, _ in first })
        var placedIDs = Set<String>()
        // Rows without a legacy hash were written by the service itself, not imported.
        for row in placed where !row.isAdjustment && row.hash != nil {
            placedIDs.insert(row.id)
            guard let original = byID[row.id] else {
                blockers.append("transaction \(row.id) was imported but is no longer in the original")
                continue
            }
            if row.hash != original.hash {
                blockers.append("transaction \(row.id) changed in the original after it was imported (the ledger is append-only)")
            }
        }
        var running = placed.last { $0.status == "completed" }?.after ?? 0
        var earned = placed.filter { $0.status == "completed" && $0.amount > 0 }.reduce(0) { $0 + $1.amount }
        var spent = placed.filter { $0.status == "completed" && $0.amount < 0 }.reduce(0) { $0 - $1.amount }
        var lastID = placed.last { $0.status == "completed" && !$0.isAdjustment }?.id
        var lastCreated: String? = nil

        var candidates: [Original] = []
        var others: [Original] = []
        for row in originals where !placedIDs.contains(row.id) {
            if CreditsImportMapping.transactionHasNoPlace(status: row.status, amount: row.amount, before: row.before, after: row.after) != nil {
                continue
            }
            guard row.after - row.before == row.amount, row.before >= 0, row.after >= 0, row.amount != 0 else {
                blockers.append(
                    "transaction \(row.id) cannot be placed (amount \(row.amount), balance \(row.before) -> \(row.after))")
                continue
            }
            if row.status == "completed" { candidates.append(row) } else { others.append(row) }
        }

        var proposals: [CreditsAdjustments.Adjustment] = []
        var rows: [AdjustmentRow] = []
        var position = 0
        var ledgerSum = running
        var ledgerEarned = earned
        var ledgerSpent = spent
        var taken = [Bool](repeating: false, count: candidates.count)
        var start = 0
        while start < candidates.count {
            if taken[start] {
                start += 1
                continue
            }
            var pick = start
            if candidates[start].before != running {
                var index = start
                var seen = 0
                while index < candidates.count, seen < Self.window {
                    if !taken[index] {
                        if candidates[index].before == running {
                            pick = index
                            break
                        }
                        seen += 1
                    }
                    index += 1
                }
            }
            let row = candidates[pick]
            if row.before != running {
                let gap = row.before - running
                proposals.append(
                    .init(
                        afterTransaction: lastID, beforeTransaction: row.id, amount: gap,
                        reason: "chain broken: transaction \(row.id) starts at \(row.before), the previous ends at \(running)"))
                position += 1
                rows.append(
                    AdjustmentRow(
                        systemKey: "legacy-import:before:\(row.id)", amount: gap, before: running, after: row.before,
                        reason: proposals.last!.reason, createdAt: lastCreated ?? row.createdAt, position: position))
                if gap > 0 { earned += gap } else { spent -= gap }
                running = row.before
            }
            taken[pick] = true
            position += 1
            chain.append((row.id, position))
            running = row.after
            ledgerSum += row.amount
            if row.amount > 0 {
                earned += row.amount
                ledgerEarned += row.amount
            } else {
                spent -= row.amount
                ledgerSpent -= row.amount
            }
            lastID = row.id
            lastCreated = row.createdAt
        }
        for row in others {
            position += 1
            chain.append((row.id, position))
        }

        var problems = proposals.map(\.reason)
        let target = balance?.balance ?? running
        if balance == nil, !chain.isEmpty || !placed.isEmpty {
            problems.append("no balance row in the original: one is created from the ledger (\(running))")
        }
        if target < 0 {
            blockers.append("balance \(target) is negative")
        } else if target != running {
            let gap = target - running
            let reason = "balance \(target), the ledger sums to \(running) (difference \(gap))"
            proposals.append(.init(afterTransaction: lastID, beforeTransaction: nil, amount: gap, reason: reason))
            problems.append(reason)
            position += 1
            rows.append(
                AdjustmentRow(
                    systemKey: "legacy-import:after:\(lastID ?? "start")", amount: gap, before: running, after: target, reason: reason,
                    createdAt: lastCreated, position: position))
            if gap > 0 { earned += gap } else { spent -= gap }
            running = target
        }
        if let balance, balance.earned != earned || balance.spent != spent {
            problems.append("total_earned \(balance.earned) / total_spent \(balance.spent), the ledger gives \(earned) / \(spent)")
        }

        if !blockers.isEmpty {
            decision = .held
            reasons = blockers
            return
        }
        guard !problems.isEmpty else { return }
        let entry = CreditsAdjustments.Entry(
            userId: userID, problems: problems, balance: balance?.balance, totalEarned: balance?.earned, totalSpent: balance?.spent,
            ledgerSum: ledgerSum, ledgerEarned: ledgerEarned, ledgerSpent: ledgerSpent, adjustments: proposals)
        if let accepted, accepted == entry {
            adjusted = true
            adjustmentRows = rows
        } else {
            decision = .held
            needed = entry
            reasons = problems + [accepted == nil ? "needs a reviewed adjustment (--accept-adjustments)" : "the adjustment in the file no longer matches the original"]
        }
    }
}
