import Foundation
import HTTPKit
import Logging
import PostgresNIO
import ServiceLifecycle
import Synchronization

/// Messages for mana-notify, written in the transaction that causes them
/// (`credits.outbox`) and delivered by ``OutboxSender``.
enum Outbox {
    static func enqueue(path: String, payload: JSONValue, on connection: PostgresConnection, logger: Logger) async throws {
        let text = String(decoding: try JSONEncoder().encode(payload), as: UTF8.self)
        try await connection.query(
            "INSERT INTO credits.outbox (destination, path, payload) VALUES ('notify', \(path), \(text)::jsonb)", logger: logger)
    }
}

/// Delivers the outbox to mana-notify: oldest first, each message in its own short
/// transaction that locks it (`FOR UPDATE SKIP LOCKED`, so replicas never send one message
/// at the same time), retrying failures with exponential backoff until delivered.
struct OutboxSender: Service {
    struct Settings: Sendable {
        var notifyURL: String
        var pollInterval: Duration = .seconds(5)
        var retryBase: Duration = .seconds(2)
        var retryMax: Duration = .seconds(600)
        var timeout: Duration = .seconds(5)
    }

    let client: PostgresClient
    let settings: Settings
    let serviceKey: String
    let signal: WakeSignal
    let metrics: ServiceMetrics
    let logger: Logger

    func run() async throws {
        let notify = ServiceClient(baseURL: settings.notifyURL, serviceKey: serviceKey, timeout: settings.timeout)
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                await deliverDue(notify)
                await measureBacklog()
                await signal.wait(upTo: settings.pollInterval)
            }
        }
    }

    /// Sends every message that is due; returns how many were delivered.
    @discardableResult
    func deliverDue(_ notify: ServiceClient? = nil) async -> Int {
        let notify = notify ?? ServiceClient(baseURL: settings.notifyURL, serviceKey: serviceKey, timeout: settings.timeout)
        var delivered = 0
        while !Task.isCancelled {
            do {
                guard let sent = try await deliverOne(notify) else { return delivered }
                if sent { delivered += 1 }
            } catch {
                logger.warning("outbox: could not read or update a message", metadata: ["error": "\(String(reflecting: error))"])
                return delivered
            }
        }
        return delivered
    }

    /// Sets `credits_outbox_pending` (undelivered messages, due or waiting for a retry) and
    /// `credits_outbox_oldest_pending_seconds` (age of the oldest; 0 when none) after each pass.
    /// One index scan of the pending messages (`outbox_pending`).
    func measureBacklog() async {
        do {
            let rows = try await client.withGuardedConnection { [logger] connection in
                try await connection.query(
                    """
                    SELECT count(*)::bigint, coalesce(extract(epoch FROM now() - min(created_at)), 0)::float8
                    FROM credits.outbox WHERE delivered_at IS NULL
                    """, logger: logger
                ).decode((Int64, Double).self).reduce(into: [(Int64, Double)]()) { $0.append($1) }
            }
            guard let (pending, oldest) = rows.first else { return }
            metrics.set("credits_outbox_pending", to: Double(pending))
            metrics.set("credits_outbox_oldest_pending_seconds", to: oldest)
        } catch {
            logger.debug("outbox: could not measure the backlog", metadata: ["error": "\(String(reflecting: error))"])
        }
    }

    /// One due message: nil when none is due, else whether it was delivered.
    private func deliverOne(_ notify: ServiceClient) async throws -> Bool? {
        try await client.withGuardedTransaction(logger: logger) { connection -> Bool? in
            let rows = try await connection.query(
                """
                SELECT id, path, payload::text, attempts FROM credits.outbox
                WHERE delivered_at IS NULL AND next_attempt_at <= now()
                ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED
                """, logger: logger)
            var message: (Int64, String, String, Int32)?
            for try await row in rows.decode((Int64, String, String, Int32).self) { message = row }
            guard let (id, path, payload, attempts) = message else { return nil }
            let failure: String?
            do {
                let response = try await notify.send(
                    method: .POST, path: path, body: Data(payload.utf8), headers: [("Idempotency-Key", "mana-credits-outbox-\(id)")])
                failure = (200..<300).contains(response.status) ? nil : "answered \(response.status)"
            } catch {
                failure = "\(error)"
            }
            if let failure {
                let delay = backoff(attempt: Int(attempts))
                try await connection.query(
                    """
                    UPDATE credits.outbox SET attempts = attempts + 1, last_error = \(String(failure.prefix(500))),
                        next_attempt_at = now() + make_interval(secs => \(delay))
                    WHERE id = \(id)
                    """, logger: logger)
                metrics.count("credits_outbox_attempts_total", [("outcome", "failed")])
                logger.warning(
                    "outbox: mana-notify did not take a message; retrying later",
                    metadata: ["outbox_id": "\(id)", "attempt": "\(attempts + 1)", "retry_in_s": "\(delay)", "error": "\(failure)"])
                return false
            }
            try await connection.query("UPDATE credits.outbox SET attempts = attempts + 1, delivered_at = now() WHERE id = \(id)", logger: logger)
            metrics.count("credits_outbox_attempts_total", [("outcome", "delivered")])
            return true
        }
    }

    /// retryBase · 2^attempt, at most retryMax, in seconds.
    func backoff(attempt: Int) -> Double {
        let base = settings.retryBase.inSeconds
        let max = settings.retryMax.inSeconds
        return min(max, base * pow(2, Double(min(attempt, 30))))
    }
}
