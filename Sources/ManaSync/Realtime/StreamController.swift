import Foundation
import HTTPKit
import Hummingbird
import ServiceLifecycle
import SharedAuth

/// `GET /sync/{appId}/stream?collections=a,b&since=<cursor>` (SSE): every change of the
/// listed collections after `since` (all pages), then live `changes` events as pushes are
/// stored (each table with its own cursor), and a `heartbeat` when nothing happened for a
/// while. Same auth and billing gate as pull; `X-Client-Id` leaves out that client's changes.
struct StreamController: Sendable {
    let changeLog: ChangeLogRepository
    let gate: BillingGate
    let memberships: MembershipDirectory
    let fanOut: MemberFanOut
    let hub: RealtimeHub
    let settings: RealtimeSettings
    let metrics: ServiceMetrics
    let shared = SharedReads()

    static let maximumCollections = 100
    static let pageSize = 1_000

    func addRoutes(to group: RouterGroup<AppRequestContext>) {
        group.get(":appId/stream", use: stream)
    }

    /// `GET :appId/stream`: Server-Sent Events, every page since the cursors, then live.
    @Sendable func stream(_ request: Request, context: AppRequestContext) async throws -> Response {
        let user = try context.requireUser()
        let appID = try SyncRequest.appID(context)
        try await gate.check(userID: user.id)
        // A stream must not start without knowing which spaces it reads (spaces.md section 9).
        if await memberships.lookup(userID: user.id) == .unavailable { throw SpaceAuthorization.unavailable }
        let query = request.uri.queryParameters
        let names = (query["collections"].map(String.init) ?? "").split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
        guard !names.isEmpty, names.allSatisfy({ !$0.isEmpty && $0.utf8.count <= 100 }) else {
            throw APIError.badRequest("collections must list 1 to 100 table names, comma-separated", field: "collections")
        }
        guard names.count <= Self.maximumCollections else {
            throw APIError.badRequest("collections lists at most \(Self.maximumCollections) tables", field: "collections")
        }
        let since = try SyncRequest.cursor(query["since"].map { .string(String($0)) })
        let clientID = request.headers[.clientID].flatMap { $0.isEmpty ? nil : $0 }
        let tables = Array(Set(names)).sorted()
        // Subscribe before the catch-up, so a push during it is not missed.
        let subscription = hub.subscribe(userID: user.id, appID: appID, clientID: clientID, tables: Set(tables))
        // And hear of pushes into the user's spaces from here on.
        await fanOut.refresh([user.id])
        let live = LiveStream(
            changeLog: changeLog, gate: gate, memberships: memberships, shared: shared, metrics: metrics, settings: settings, userID: user.id, appID: appID,
            clientID: clientID, validUntil: user.validUntil)
        let hub = self.hub
        return Response(
            status: .ok,
            headers: [.contentType: "text/event-stream", .cacheControl: "no-cache", .init("X-Accel-Buffering")!: "no"],
            body: ResponseBody { writer in
                do {
                    try await withGracefulShutdownHandler {
                        try await live.run(subscription: subscription, tables: tables, since: since) { try await writer.write($0) }
                    } onGracefulShutdown: {
                        subscription.close()
                    }
                } catch {
                    // The client went away (or the database failed mid-stream): end the stream.
                }
                hub.unsubscribe(subscription)
                try? await writer.finish(nil)
            })
    }

    static func event(_ name: String, rawJSON: [UInt8]) -> ByteBuffer {
        var buffer = ByteBuffer(string: "event: \(name)\ndata: ")
        buffer.writeBytes(rawJSON)
        buffer.writeString("\n\n")
        return buffer
    }

    static func event(_ name: String, _ data: JSONValue) -> ByteBuffer {
        let json = String(decoding: (try? JSONEncoder.sortedKeys.encode(data)) ?? Data("{}".utf8), as: UTF8.self)
        return ByteBuffer(string: "event: \(name)\ndata: \(json)\n\n")
    }
}
