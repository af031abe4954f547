import Foundation
import HTTPKit
import Logging
import NIOHTTP1

/// The few Stripe REST calls mana-credits makes: form-encoded, `Authorization: Bearer`, and an
/// `Idempotency-Key` on every create, so a retried request never makes a second object.
struct StripeClient: Sendable {
    let http: ServiceClient
    let logger: Logger

    init(settings: StripeSettings, secretKey: String, logger: Logger = Logger(label: "mana-credits.stripe")) {
        self.logger = logger
        http = ServiceClient(
            baseURL: settings.apiBase, serviceKey: nil, timeout: settings.timeout,
            headers: [("Authorization", "Bearer \(secretKey)"), ("Stripe-Version", "2024-06-20")])
    }

    struct PaymentIntent: Decodable, Sendable {
        let id: String
        let client_secret: String?
        let status: String
        let amount: Int64
        let currency: String
    }

    private struct Created: Decodable {
        let id: String
    }

    func createCustomer(userID: String, email: String?, idempotencyKey: String) async throws -> String {
        var fields = [("metadata[userId]", userID)]
        if let email { fields.append(("email", email)) }
        let created: Created = try await post("/v1/customers", fields, idempotencyKey: idempotencyKey)
        return created.id
    }

    func createPaymentIntent(
        amount: Int64, customer: String, metadata: [(String, String)], idempotencyKey: String
    ) async throws -> PaymentIntent {
        var fields = [
            ("amount", String(amount)), ("currency", "eur"), ("customer", customer),
            ("payment_method_types[]", "card"), ("payment_method_types[]", "sepa_debit"),
        ]
        fields += metadata.map { ("metadata[\($0.0)]", $0.1) }
        return try await post("/v1/payment_intents", fields, idempotencyKey: idempotencyKey)
    }

    func retrievePaymentIntent(_ id: String) async throws -> PaymentIntent {
        let path = "/v1/payment_intents/" + (id.addingPercentEncoding(withAllowedCharacters: .pathSegment) ?? id)
        return try decode(try await call { try await http.send(method: .GET, path: path, body: nil) })
    }

    // MARK: Plumbing

    private func post<T: Decodable>(_ path: String, _ fields: [(String, String)], idempotencyKey: String) async throws -> T {
        let body = Data(Self.formEncode(fields).utf8)
        return try decode(
            try await call {
                try await http.send(
                    method: .POST, path: path, body: body, contentType: "application/x-www-form-urlencoded",
                    headers: [("Idempotency-Key", idempotencyKey)])
            })
    }

    /// Maps transport failures: timeout → 504, anything else → 502 "payment provider error"
    /// (the cause is logged, never answered).
    private func call(_ send: () async throws -> ServiceResponse) async throws -> ServiceResponse {
        do {
            return try await send()
        } catch ServiceClientError.timeout {
            logger.warning("Stripe did not answer in time")
            throw APIError(.gatewayTimeout, message: "the payment provider did not answer in time")
        } catch {
            logger.error("Stripe could not be reached", metadata: ["error": "\(String(reflecting: error))"])
            throw Self.providerError
        }
    }

    static let providerError = APIError(.badGateway, code: "payment_provider_error", message: "payment provider error")

    /// Stripe's error bodies: a card problem is 402 "payment declined" with Stripe's decline
    /// code, anything else 502 "payment provider error". Stripe's own text (which may describe
    /// our account, keys or request) goes to the log only.
    private func decode<T: Decodable>(_ response: ServiceResponse) throws -> T {
        guard (200..<300).contains(response.status) else {
            let failure = try? JSONDecoder().decode(StripeFailure.self, from: response.body)
            logger.error(
                "Stripe refused a request",
                metadata: [
                    "status": "\(response.status)", "stripe_type": "\(failure?.error.type ?? "-")",
                    "stripe_code": "\(failure?.error.code ?? "-")", "stripe_message": "\(failure?.error.message ?? "-")",
                ])
            if failure?.error.type == "card_error" || response.status == 402 {
                throw APIError(
                    .paymentRequired, code: "payment_declined", message: "payment declined",
                    details: failure?.error.code.map { ["declineCode": .string($0)] })
            }
            throw Self.providerError
        }
        do {
            return try JSONDecoder().decode(T.self, from: response.body)
        } catch {
            logger.error("Stripe sent an unreadable answer", metadata: ["error": "\(String(reflecting: error))"])
            throw Self.providerError
        }
    }

    static func formEncode(_ fields: [(String, String)]) -> String {
        var allowed = CharacterSet.alphanumerics
        allowed.insert(charactersIn: "-._~")
        return fields.map { key, value in
            "\(key.addingPercentEncoding(withAllowedCharacters: allowed) ?? key)=\(value.addingPercentEncoding(withAllowedCharacters: allowed) ?? value)"
        }.joined(separator: "&")
    }
}

/// Stripe's error body: `{"error": {"type", "code", "message"}}`.
private struct StripeFailure: Decodable {
    struct Body: Decodable {
        let type: String?
        let code: String?
        let message: String?
    }
    let error: Body
}
