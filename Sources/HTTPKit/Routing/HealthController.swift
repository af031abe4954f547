import Foundation
import Hummingbird
import Logging
import PostgresNIO

/// `GET /health`, `GET /ready` and `GET /metrics`, the same for both services.
package struct HealthController<Context: RequestContext>: Sendable {
    let serviceName: String
    let database: PostgresClient?
    let metrics: ServiceMetrics
    /// Extra members of the `/health` body (mana-sync adds connection counts).
    let healthDetails: @Sendable () -> [String: JSONValue]
    let readinessTimeout: Duration

    package init(
        serviceName: String, database: PostgresClient?, metrics: ServiceMetrics,
        readinessTimeout: Duration = .seconds(2),
        healthDetails: @escaping @Sendable () -> [String: JSONValue] = { [:] }
    ) {
        self.serviceName = serviceName
        self.database = database
        self.metrics = metrics
        self.readinessTimeout = readinessTimeout
        self.healthDetails = healthDetails
    }

    package func addRoutes(to router: some RouterMethods<Context>) {
        router.get("health", use: health)
        router.get("ready", use: ready)
        router.get("metrics", use: exposition)
    }

    struct ReadyResponse: Encodable {
        let status: String
        let service: String
        let database: Bool
    }

    /// `GET /health`: the process answers (plus the service's details, e.g. connection counts).
    @Sendable func health(_ request: Request, context: Context) async throws -> JSONResponse {
        var body = healthDetails()
        body["status"] = "ok"
        body["service"] = .string(serviceName)
        body["timestamp"] = .string(Timestamp.iso8601(Date()))
        return try JSONResponse(body)
    }

    /// `GET /ready`: 200 when the database answers within the readiness timeout, else 503.
    @Sendable func ready(_ request: Request, context: Context) async throws -> JSONResponse {
        let ready = await isDatabaseReady(logger: context.logger)
        return try JSONResponse(
            ReadyResponse(status: ready ? "ready" : "unavailable", service: serviceName, database: ready),
            status: ready ? .ok : .serviceUnavailable)
    }

    /// `GET /metrics`: the Prometheus text exposition.
    @Sendable func exposition(_ request: Request, context: Context) async throws -> Response {
        ProcessMetrics.sample(into: metrics)
        return Response(
            status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
            body: .init(byteBuffer: ByteBuffer(string: metrics.exposition())))
    }

    /// True when the database answers `SELECT 1` within the readiness timeout.
    package func isDatabaseReady(logger: Logger) async -> Bool {
        guard let database else { return true }
        do {
            return try await withTimeout(readinessTimeout) {
                try await database.guardedExecute("SELECT 1", logger: logger)
                return true
            }
        } catch {
            logger.warning("readiness check failed", metadata: ["error": "\(error)"])
            return false
        }
    }
}
