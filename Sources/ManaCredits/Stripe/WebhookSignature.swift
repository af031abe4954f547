import Crypto
import Foundation

/// Stripe's webhook signature: `Stripe-Signature: t=<unix>,v1=<hex>[,v1=<hex>...]`, each `v1`
/// an HMAC-SHA256 of `"<t>.<raw body>"` with the endpoint's secret. Any matching `v1` is
/// accepted (a secret rotation sends several); the timestamp must be within the tolerance.
enum WebhookSignature {
    enum Failure: Error, Equatable {
        case missingHeader, malformedHeader, staleTimestamp, noMatch
    }

    static func verify(header: String?, payload: Data, secret: String, tolerance: TimeInterval, now: Date = Date()) throws(Failure) {
        guard let header, !header.isEmpty else { throw .missingHeader }
        var timestamp: Int?
        var signatures: [Data] = []
        for part in header.split(separator: ",") {
            let pair = part.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
            guard pair.count == 2 else { continue }
            switch pair[0] {
            case "t": timestamp = Int(pair[1])
            case "v1": if let bytes = hexBytes(pair[1]) { signatures.append(bytes) }
            default: break  // v0 and future schemes are ignored
            }
        }
        guard let timestamp, !signatures.isEmpty else { throw .malformedHeader }
        guard abs(now.timeIntervalSince1970 - TimeInterval(timestamp)) <= tolerance else { throw .staleTimestamp }
        let key = SymmetricKey(data: Data(secret.utf8))
        let signed = Data("\(timestamp).".utf8) + payload
        // isValidAuthenticationCode compares in constant time.
        guard signatures.contains(where: { HMAC<SHA256>.isValidAuthenticationCode($0, authenticating: signed, using: key) }) else {
            throw .noMatch
        }
    }

    private static func hexBytes(_ text: String) -> Data? {
        guard text.count == 64 else { return nil }
        var bytes = Data(capacity: 32)
        var index = text.startIndex
        while index < text.endIndex {
            let next = text.index(index, offsetBy: 2)
            guard let byte = UInt8(text[index..<next], radix: 16) else { return nil }
            bytes.append(byte)
            index = next
        }
        return bytes
    }
}
