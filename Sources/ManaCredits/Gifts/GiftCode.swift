import Foundation
import HTTPKit
import SharedAuth

/// A gift code as stored in `gifts.gift_codes`.
struct GiftCode: Sendable {
    let id: String
    let code: String
    let shortURL: String
    let creatorID: String
    let creatorName: String?
    let totalCredits: Int64
    let redeemed: Bool
    let type: String
    let status: String
    let targetEmail: String?
    let message: String?
    let expiresAt: Date
    let createdAt: Date

    static let columns = """
        id::text, code, short_url, creator_id, creator_name, total_credits, redeemed, type, status, target_email, message,
        expires_at, created_at
        """
    typealias Row = (String, String, String, String, String?, Int64, Bool, String, String, String?, String?, Date, Date)

    init(_ row: Row) {
        (id, code, shortURL, creatorID, creatorName, totalCredits, redeemed, type, status, targetEmail, message, expiresAt, createdAt) = row
    }

    /// The status a reader should see: an active code past its expiry is `expired` even
    /// before the expiry job has run.
    func effectiveStatus(now: Date = Date()) -> String {
        status == "active" && expiresAt <= now ? "expired" : status
    }

    /// What anyone with the code may see: never the target email or the creator's id.
    struct PublicView: Encodable, Sendable {
        let code: String
        let type: String
        let status: String
        let totalCredits: Int64
        let redeemed: Bool
        @NullWhenAbsent var message: String?
        @NullWhenAbsent var creatorName: String?
        let expiresAt: Date
    }

    /// What the creator sees besides the public fields.
    struct OwnerFields: Encodable, Sendable {
        let id: String
        let shortUrl: String
        @NullWhenAbsent var targetEmail: String?
        let createdAt: Date
    }

    var publicView: PublicView {
        PublicView(
            code: code, type: type, status: effectiveStatus(), totalCredits: totalCredits, redeemed: redeemed, message: message,
            creatorName: creatorName, expiresAt: expiresAt)
    }

    /// What the creator sees: the public fields plus id, short URL, target and creation time.
    var ownerView: Merged<PublicView, OwnerFields> {
        Merged(publicView, OwnerFields(id: id, shortUrl: shortURL, targetEmail: targetEmail, createdAt: createdAt))
    }

    /// The name a gift shows when its creator gave none: the token's `name`, else the part
    /// of its `email` before `@` — never the whole address, since the lookup is public.
    static func creatorName(of creator: AuthenticatedUser) -> String? {
        if let name = creator.name?.trimmingCharacters(in: .whitespacesAndNewlines), !name.isEmpty {
            return String(name.prefix(100))
        }
        guard let local = creator.email?.split(separator: "@", omittingEmptySubsequences: false).first, !local.isEmpty else {
            return nil
        }
        return String(local.prefix(100))
    }

    /// Codes from a cryptographically secure generator (the system's, `getrandom` on Linux)
    /// over an alphabet without look-alikes (no I, O, 0, 1).
    static let alphabet = Array("ABCDEFGHJKLMNPQRSTUVWXYZ23456789")
    static let length = 10

    static func generate() -> String {
        var generator = SystemRandomNumberGenerator()
        return String((0..<length).map { _ in alphabet[Int.random(in: 0..<alphabet.count, using: &generator)] })
    }

    /// A plausible email address: one `@`, a local part, a dotted domain, no spaces, ≤ 254.
    static func isValidEmail(_ email: String) -> Bool {
        let parts = email.split(separator: "@", omittingEmptySubsequences: false)
        guard email.count <= 254, parts.count == 2, !parts[0].isEmpty, parts[1].contains("."),
            !parts[1].hasPrefix("."), !parts[1].hasSuffix("."), !email.contains(where: \.isWhitespace)
        else { return false }
        return true
    }
}
