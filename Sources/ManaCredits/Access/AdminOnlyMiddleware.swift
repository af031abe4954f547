import Foundation
import HTTPKit
import Hummingbird
import SharedAuth

/// Lets only tokens with `role: admin` through (after ``JWTAuthMiddleware``); anyone else
/// gets the original's refusal, `403 {"statusCode": 403, "error": "Forbidden", "message":
/// "Admin access required"}` — the one answer of ours that carries `error`.
struct AdminOnlyMiddleware: RouterMiddleware {
    typealias Context = AppRequestContext

    static let refusal: [String: JSONValue] = ["statusCode": 403, "error": "Forbidden", "message": "Admin access required"]

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        guard try context.requireUser().isAdmin else {
            let body = try JSONEncoder.sortedKeys.encode(Self.refusal)
            return Response(
                status: .forbidden, headers: [.contentType: "application/json; charset=utf-8"],
                body: .init(byteBuffer: ByteBuffer(bytes: body)))
        }
        return try await next(request, context)
    }
}
