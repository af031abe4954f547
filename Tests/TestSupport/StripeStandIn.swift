import Crypto
import Foundation
import HTTPKit
import Hummingbird
import Synchronization

/// A loopback stand-in for the few Stripe endpoints mana-credits uses: form-encoded bodies,
/// `Authorization: Bearer`, idempotency keys (a repeated key answers the first response),
/// Stripe-shaped errors. A PaymentIntent of 666 cents is declined as a card error.
package final class StripeStandIn: Sendable {
    package static let secretKey = "sk_test_mana"
    package static let webhookSecret = "whsec_test_mana"

    private final class State: Sendable {
        let value = Mutex<(counter: Int, byKey: [String: String], intents: [String: String])>((0, [:], [:]))
    }

    package let server: StandInServer
    private let state = State()

    package init() throws {
        let state = self.state
        server = try StandInServer { router in
            router.post("v1/customers") { request, _ -> Response in
                try await Self.create(request, state: state) { id, _ in #"{"id":"cus_\#(id)","object":"customer"}"# }
            }
            router.post("v1/payment_intents") { request, _ -> Response in
                try await Self.create(request, state: state) { id, form in
                    let metadata = form.filter { $0.key.hasPrefix("metadata[") }
                        .map { #""\#($0.key.dropFirst(9).dropLast())":"\#($0.value)""# }.joined(separator: ",")
                    let body = #"{"id":"pi_\#(id)","object":"payment_intent","client_secret":"pi_\#(id)_secret_standin","status":"requires_payment_method","amount":\#(form["amount"] ?? "0"),"currency":"\#(form["currency"] ?? "")","metadata":{\#(metadata)}}"#
                    state.value.withLock { $0.intents["pi_\(id)"] = body }
                    return body
                }
            }
            router.get("v1/payment_intents/:id") { request, context -> Response in
                guard request.headers[.authorization] == "Bearer \(StripeStandIn.secretKey)" else { return StripeStandIn.unauthorized }
                let id = context.parameters.get("id") ?? ""
                guard let body = state.value.withLock({ $0.intents[id] }) else {
                    return .json(#"{"error":{"type":"invalid_request_error","code":"resource_missing","message":"No such payment_intent"}}"#, status: .notFound)
                }
                return .json(body)
            }
        }
    }

    private static let unauthorized = Response.json(
        #"{"error":{"type":"invalid_request_error","message":"Invalid API Key provided"}}"#, status: .unauthorized)

    private static func create(
        _ request: Request, state: State, _ make: @Sendable (Int, [String: String]) -> String
    ) async throws -> Response {
        guard request.headers[.authorization] == "Bearer \(StripeStandIn.secretKey)" else { return StripeStandIn.unauthorized }
        var request = request
        let form = Self.parse(String(buffer: try await request.collectBody(upTo: 1 << 20)))
        if form["amount"] == "666" {
            return .json(#"{"error":{"type":"card_error","code":"card_declined","message":"Your card was declined."}}"#, status: .paymentRequired)
        }
        let key = request.headers[.init("Idempotency-Key")!].map { "\(request.uri.path)|\($0)" }
        if let key, let earlier = state.value.withLock({ $0.byKey[key] }) { return .json(earlier) }
        let id = state.value.withLock { state -> Int in
            state.counter += 1
            return state.counter
        }
        let body = make(id, form)
        if let key { state.value.withLock { $0.byKey[key] = body } }
        return .json(body)
    }

    package static func parse(_ form: String) -> [String: String] {
        var fields: [String: String] = [:]
        for pair in form.split(separator: "&") {
            let parts = pair.split(separator: "=", maxSplits: 1).map { String($0).removingPercentEncoding ?? String($0) }
            guard parts.count == 2 else { continue }
            fields[parts[0]] = fields[parts[0]].map { "\($0),\(parts[1])" } ?? parts[1]
        }
        return fields
    }

    /// A webhook event for a PaymentIntent, signed as Stripe would sign it.
    package static func event(
        id: String, type: String, intent: String, purchaseID: String, secrets: [String] = [webhookSecret], age: Int = 0
    ) -> (body: String, signature: String) {
        let body = #"{"id":"\#(id)","object":"event","type":"\#(type)","data":{"object":{"id":"\#(intent)","object":"payment_intent","metadata":{"purchaseId":"\#(purchaseID)"}}}}"#
        return (body, signature(payload: Data(body.utf8), secrets: secrets, timestamp: Int(Date().timeIntervalSince1970) - age))
    }

    /// A `Stripe-Signature` header as Stripe computes it: `t=<unix>,v1=<hex HMAC-SHA256 of "t.body">` per secret.
    package static func signature(payload: Data, secrets: [String], timestamp: Int) -> String {
        let signed = Data("\(timestamp).".utf8) + payload
        let signatures = secrets.map { secret in
            HMAC<SHA256>.authenticationCode(for: signed, using: SymmetricKey(data: Data(secret.utf8))).map { String(format: "%02x", $0) }.joined()
        }
        return (["t=\(timestamp)"] + signatures.map { "v1=\($0)" }).joined(separator: ",")
    }
}
