import HTTPKit
import Hummingbird
import SharedAuth

/// `POST /internal/memberships/invalidate` (service key), `{"userIds": ["u_b"]}` → 204:
/// mana-auth calls it after an invitation is accepted, a member is removed, a role changes or
/// an organization is deleted, so the change takes effect at once on every replica.
struct MembershipController: Sendable {
    let directory: MembershipDirectory
    /// Tells the other replicas (over the NOTIFY channel).
    var broadcast: @Sendable ([String]) async -> Void = { _ in }

    static let maximumUsers = 1_000

    func addRoutes(to group: RouterGroup<AppRequestContext>) {
        group.post("invalidate", use: invalidate)
    }

    struct InvalidateBody: Decodable {
        let userIds: JSONValue?
    }

    @Sendable func invalidate(_ request: Request, context: AppRequestContext) async throws -> Response {
        let body = try await request.decode(as: InvalidateBody.self, context: context)
        guard case .array(let values)? = body.userIds else {
            throw APIError.badRequest("userIds must be an array of user ids", field: "userIds")
        }
        guard values.count <= Self.maximumUsers else {
            throw APIError.badRequest("userIds may name at most \(Self.maximumUsers) users", field: "userIds")
        }
        let userIDs = try values.enumerated().map { index, value -> String in
            guard let id = value.stringValue, !id.isEmpty, id.utf8.count <= 200 else {
                throw APIError.badRequest("userIds[\(index)] must be a user id of 1-200 characters", field: "userIds")
            }
            return id
        }
        directory.invalidate(userIDs: userIDs)
        await broadcast(userIDs)
        return Response(status: .noContent)
    }
}
