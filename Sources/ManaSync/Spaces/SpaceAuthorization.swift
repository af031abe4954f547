import HTTPKit
import HTTPTypes

/// Who may write into which space (spaces.md section 9, "Push authorization"): checked for
/// the whole push before anything is stored.
///
/// | a change's space | result |
/// |---|---|
/// | none | the author's own row |
/// | `_personal:<caller>` | allowed |
/// | `_personal:<someone else>` | 403 |
/// | any other | the caller needs a write role there (`SPACE_WRITE_ROLES`), else 403; 503 when memberships cannot be resolved |
///
/// A record that moves to another space is refused by the database (409, ``RecordMoved``).
enum SpaceAuthorization {
    /// The changes (with their index in the push) whose space needs a membership; throws the
    /// 403 for a change into another user's personal space.
    static func spacesToCheck(_ changes: [(index: Int, change: Change)], userID: String) throws -> [(index: Int, space: String)] {
        var needed: [(index: Int, space: String)] = []
        for (index, change) in changes {
            guard let space = change.spaceID else { continue }
            if space.hasPrefix(Memberships.personalPrefix) {
                guard space == Memberships.personalPrefix + userID else { throw forbidden(space: space, index: index) }
                continue
            }
            needed.append((index, space))
        }
        return needed
    }

    /// Throws 503 when there is no usable answer, 403 for the first change into a space the
    /// caller may not write.
    static func check(_ needed: [(index: Int, space: String)], lookup: MembershipDirectory.Lookup, writeRoles: Set<String>) throws {
        guard !needed.isEmpty else { return }
        guard let memberships = lookup.memberships else { throw unavailable }
        for (index, space) in needed where !memberships.canWrite(space, writeRoles: writeRoles) {
            throw forbidden(space: space, index: index)
        }
    }

    static func forbidden(space: String, index: Int) -> APIError {
        APIError(
            .forbidden, message: "forbidden: space \(space) (change \(index))",
            details: ["index": .number(Double(index)), "spaceId": .string(space)])
    }

    static let unavailable = APIError(
        .serviceUnavailable, code: "memberships_unavailable",
        message: "space memberships cannot be resolved right now (mana-auth); retry", headers: [.retryAfter: "5"])

    /// The database refused the push: change `index` (of the stored batch) names another space
    /// than the record's.
    struct RecordMoved: Error {
        let index: Int
        let recorded: String
    }

    static func conflict(index: Int, recorded: String, wanted: String) -> APIError {
        APIError.conflict(
            "conflict: record of change \(index) belongs to space \(recorded), not \(wanted)",
            details: ["index": .number(Double(index)), "spaceId": .string(wanted), "recordSpaceId": .string(recorded)])
    }
}

/// What a user's read covers (spaces.md section 9, "Degraded reads").
enum ReadScope: Sendable, Equatable {
    /// Own rows only: the user belongs to no space (its personal organization aside).
    case own
    /// Own rows and the rows of these spaces (sorted).
    case spaces([String])
    /// Memberships cannot be resolved: own rows, and the cursor does not move.
    case degraded

    init(_ lookup: MembershipDirectory.Lookup) {
        guard let memberships = lookup.memberships else {
            self = .degraded
            return
        }
        let spaces = memberships.spaces.filter { !$0.hasPrefix(Memberships.personalPrefix) }
        self = spaces.isEmpty ? .own : .spaces(spaces)
    }

    var spaces: [String] {
        if case .spaces(let spaces) = self { return spaces }
        return []
    }

    /// The header a degraded answer carries.
    static let degradedHeader: HTTPFields = [HTTPField.Name("X-Sync-Degraded")!: "memberships"]
}
