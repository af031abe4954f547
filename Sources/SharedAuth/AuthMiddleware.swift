import Crypto
import Foundation
import HTTPKit
import HTTPTypes
import Hummingbird

/// Requires a valid bearer token and puts its user in the request context; 401 otherwise.
package struct JWTAuthMiddleware<Context: AuthRequestContext>: RouterMiddleware {
    let verifier: TokenVerifier
    let wording: AuthErrorWording

    package init(verifier: TokenVerifier, wording: AuthErrorWording = .detailed) {
        self.verifier = verifier
        self.wording = wording
    }

    package func handle(
        _ request: Request, context: Context, next: (Request, Context) async throws -> Response
    ) async throws -> Response {
        guard let header = request.headers[.authorization] else { throw wording.apiError(for: .missingHeader) }
        guard header.count > 7, header.prefix(7).lowercased() == "bearer " else { throw wording.apiError(for: .notBearer) }
        let token = BearerHeader.trimmingSpaces(header.dropFirst(7))
        var context = context
        do {
            context.user = try await verifier.verify(token)
        } catch {
            context.logger.info("token refused", metadata: ["reason": "\(error.message)"])
            throw wording.apiError(for: error)
        }
        context.logger[metadataKey: "user_id"] = .string(context.user!.id)
        return try await next(request, context)
    }
}

/// Requires `X-Service-Key` equal to one of the configured keys (compared in constant
/// time) and exposes `X-App-Id` (default `unknown`) and the key's name, if it has one
/// (logged as `caller`); 401 otherwise.
package struct ServiceKeyMiddleware<Context: AuthRequestContext>: RouterMiddleware {
    let keys: ServiceKeys
    let wording: AuthErrorWording

    package init(keys: ServiceKeys, wording: AuthErrorWording = .detailed) {
        self.keys = keys
        self.wording = wording
    }

    package func handle(
        _ request: Request, context: Context, next: (Request, Context) async throws -> Response
    ) async throws -> Response {
        guard let presented = request.headers[.serviceKey], !presented.isEmpty else {
            throw wording.apiError(for: .missingServiceKey)
        }
        guard let match = keys.match(presented) else { throw wording.apiError(for: .wrongServiceKey) }
        var context = context
        let appID = request.headers[.appID].flatMap { $0.isEmpty ? nil : String($0.prefix(64)) } ?? "unknown"
        context.callerAppID = appID
        context.callerName = match.name
        context.logger[metadataKey: "caller"] = .string(match.name ?? "unnamed")
        return try await next(request, context)
    }
}

/// The accepted service keys (several during a rotation), each optionally named.
///
/// An entry of `MANA_SERVICE_KEY` is `name:key` when the text before its first `:` is a
/// short name (1–32 of `a-z`, `0-9`, `-`); anything else is an unnamed key, taken whole.
/// A key that itself contains `:` after such a prefix must therefore be written with a
/// name: `billing:abc:def` is the key `abc:def` named `billing`.
///
/// ```swift
/// let keys = ServiceKeys(["mana-auth:4f…", "legacy-key"])
/// keys.match("4f…")?.name   // "mana-auth"
/// ```
package struct ServiceKeys: Sendable {
    /// One configured key: its name (nil for an unnamed entry) and the secret part.
    package struct Entry: Sendable, Equatable {
        package let name: String?
        package let key: String

        /// Parses `name:key` or a bare key.
        package init(parsing entry: String) {
            if let colon = entry.firstIndex(of: ":"), Self.isName(entry[..<colon]), entry.index(after: colon) < entry.endIndex {
                name = String(entry[..<colon])
                key = String(entry[entry.index(after: colon)...])
            } else {
                name = nil
                key = entry
            }
        }

        static func isName(_ text: Substring) -> Bool {
            (1...32).contains(text.utf8.count)
                && text.utf8.allSatisfy { (UInt8(ascii: "a")...UInt8(ascii: "z")).contains($0) || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0) || $0 == UInt8(ascii: "-") }
        }
    }

    /// A presented key that matched: the entry's name, if any.
    package struct Match: Sendable, Equatable {
        package let name: String?

        package init(name: String?) { self.name = name }
    }

    private let entries: [(name: String?, digest: SHA256.Digest)]

    package init(_ entries: [String]) {
        self.entries = entries.map(Entry.init(parsing:)).filter { !$0.key.isEmpty }.map { ($0.name, SHA256.hash(data: Data($0.key.utf8))) }
    }

    /// The matching entry, if `presented` equals one of the keys. Every key is compared,
    /// each in constant time over fixed-length digests, so timing reveals neither key nor match.
    package func match(_ presented: String) -> Match? {
        let candidate = SHA256.hash(data: Data(presented.utf8))
        var matched: Match?
        for entry in entries {
            var difference: UInt8 = 0
            for (a, b) in zip(entry.digest, candidate) { difference |= a ^ b }
            if difference == 0, matched == nil { matched = Match(name: entry.name) }
        }
        return matched
    }

    /// True when `presented` equals one of the keys.
    package func accepts(_ presented: String) -> Bool {
        match(presented) != nil
    }
}

extension HTTPField.Name {
    /// `X-Service-Key`.
    package static var serviceKey: Self { .init("X-Service-Key")! }
    /// `X-App-Id`.
    package static var appID: Self { .init("X-App-Id")! }
}

enum BearerHeader {
    /// `text` without leading and trailing spaces: what `trimmingCharacters(in: .whitespaces)`
    /// removes (tab, the Unicode space separators, and on Linux U+200B), without its round trip through NSString
    /// (3 % of mana-sync's CPU under pushes).
    static func trimmingSpaces(_ text: Substring) -> String {
        func isSpace(_ scalar: Unicode.Scalar) -> Bool {
            scalar == "\t" || scalar == "\u{200B}" || scalar.properties.generalCategory == .spaceSeparator
        }
        let scalars = text.unicodeScalars
        guard let first = scalars.firstIndex(where: { !isSpace($0) }), let last = scalars.lastIndex(where: { !isSpace($0) }) else {
            return ""
        }
        return String(scalars[first...last])
    }
}
