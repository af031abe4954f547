import Foundation
import HTTPKit
import Logging
import ServiceLifecycle

/// The ledger audit (``LedgerAudit``, as `mana-credits audit` runs it) inside the server, so
/// its verdict reaches Prometheus: `credits_ledger_audit_runs_total{outcome=clean|violations|error}`,
/// `credits_ledger_audit_violations` (found by the last run) and
/// `credits_ledger_audit_last_run_timestamp_seconds`.
///
/// The first run comes one interval after start, at most ten minutes (a restart does not
/// rescan the ledger at once), then every interval. Each violation is logged at error.
struct AuditSettings: Sendable {
    /// Time between audits in this process; nil switches them off.
    var interval: Duration? = .seconds(86_400)

    enum Variables {
        static let interval = EnvironmentVariable(
            "LEDGER_AUDIT_INTERVAL", default: "86400",
            help: "seconds between ledger audits in this process (metrics credits_ledger_audit_*); 0 switches them off")
        static let all = [interval]
    }

    init() {}

    init(reading reader: inout ConfigReader) {
        let interval = reader.seconds(Variables.interval, in: 0...604_800)
        self.interval = interval == .zero ? nil : interval
    }
}

struct LedgerAuditSchedule: Service {
    let audit: LedgerAudit
    let interval: Duration
    let metrics: ServiceMetrics
    let logger: Logger

    func run() async throws {
        await cancelWhenGracefulShutdown {
            try? await Task.sleep(for: min(interval, .seconds(600)))
            while !Task.isCancelled {
                await runOnce()
                try? await Task.sleep(for: interval)
            }
        }
    }

    func runOnce() async {
        do {
            let violations = try await audit.run()
            for violation in violations {
                logger.error("ledger audit violation", metadata: ["violation": "\(violation)"])
            }
            metrics.set("credits_ledger_audit_violations", to: Double(violations.count))
            metrics.count("credits_ledger_audit_runs_total", [("outcome", violations.isEmpty ? "clean" : "violations")])
        } catch {
            if Task.isCancelled { return }
            logger.error("ledger audit could not run", metadata: ["error": "\(String(reflecting: error))"])
            metrics.count("credits_ledger_audit_runs_total", [("outcome", "error")])
        }
        metrics.set("credits_ledger_audit_last_run_timestamp_seconds", to: Date().timeIntervalSince1970)
    }
}
