import Foundation
import HTTPKit
import HTTPTypes
import Hummingbird
import SharedAuth

/// `POST /sync/{appId}` and `GET /sync/{appId}/pull`.
struct SyncController: Sendable {
    let changeLog: ChangeLogRepository
    let gate: BillingGate
    let memberships: MembershipDirectory
    /// Tells every replica of a committed push.
    let notifier: PushNotifier
    let metrics: ServiceMetrics

    /// Most changes one push may carry (`SYNC_MAX_CHANGES`).
    let maximumChanges: Int
    /// Page sizes of push answers and of pulls without `limit` (`SYNC_PUSH_PAGE_LIMIT`, `SYNC_PULL_PAGE_DEFAULT`).
    let pages: PageLimits
    /// Full pages of users in no shared space, cut from recent stretches of their logs.
    let segments: LogSegments

    func addRoutes(to group: RouterGroup<AppRequestContext>) {
        group.post(":appId", use: push)
        group.get(":appId/pull", use: pull)
    }

    /// `POST :appId`: `{clientId, changes, since?, schemaVersion?}`, as the tree path reads it
    /// (every push ``PushScan`` leaves to it): members read as JSON values and checked one by
    /// one (each change by ``Change/init(validating:index:)``), so every error names its field.
    struct PushBody {
        let clientId: JSONValue?
        let changes: JSONValue?
        let since: JSONValue?
        let schemaVersion: JSONValue?

        /// The members of a parsed body; a member that is null counts as absent.
        init(_ body: JSONValue) throws {
            guard let members = body.objectValue else { throw APIError.badRequest("request body must be a JSON object") }
            func member(_ name: String) -> JSONValue? { members[name].flatMap { $0 == .null ? nil : $0 } }
            clientId = member("clientId")
            changes = member("changes")
            since = member("since")
            schemaVersion = member("schemaVersion")
        }
    }

    /// A push as read from its body: whose, since when, and what to store.
    struct PushInput {
        let clientID: String
        let since: Int64
        /// The tables of the changes stored, sorted.
        let tables: [String]
        let stored: Stored

        enum Stored {
            /// Own rows, read straight into columns (``PushScan``).
            case rows(PushRows)
            /// Validated changes with their index in the push, and the shared spaces they write.
            case changes([(index: Int, change: Change)], writeSpaces: [String])
        }

        var writeSpaces: [String] {
            if case .changes(_, let spaces) = stored { return spaces }
            return []
        }
    }

    /// `POST :appId`: stores a batch of changes and answers with the page the client missed.
    @Sendable func push(_ request: Request, context: AppRequestContext) async throws -> JSONResponse {
        let user = try context.requireUser()
        let appID = try SyncRequest.appID(context)
        try await gate.check(userID: user.id)
        let body = try await context.requestDecoder.jsonText(from: request)
        let lookup = await memberships.lookup(userID: user.id)
        let scope = ReadScope(lookup)
        // A plain push of a user in no space is read straight into columns; anything else (and
        // every body to refuse, so that the 400 names its field) as a tree of JSON values.
        let scanned = scope == .own ? body.readableBytesView.withContiguousStorageIfAvailable {
            PushScan($0, maximumChanges: maximumChanges)
        } ?? nil : nil
        let input: PushInput
        if let scanned {
            let clientID = try SyncRequest.clientID(header: request.headers[.clientID], body: scanned.clientID.map(JSONValue.string))
            let since = try SyncRequest.cursor(scanned.since.map(JSONValue.string))
            input = PushInput(clientID: clientID, since: since, tables: scanned.tables, stored: .rows(scanned.rows))
        } else {
            input = try readPush(body, request: request, userID: user.id, lookup: lookup)
        }
        let key = request.headers[.idempotencyKey]
        if let key, key.isEmpty || key.count > 200 {
            throw APIError.badRequest("Idempotency-Key must be 1 to 200 characters", field: "Idempotency-Key")
        }
        let (clientID, since, tables) = (input.clientID, input.since, input.tables)
        let writeSpaces = input.writeSpaces
        // A user in no space: the answer may come from a held stretch of the log (the push then
        // asks PostgreSQL for no page; a full page of older changes is the same before and after it).
        let own = scope == .own && writeSpaces.isEmpty ? LogSegments.Key(user: user.id, app: appID) : nil
        let cached = own.flatMap {
            segments.fullPage($0, table: nil, excludingClient: clientID, since: since, limit: pages.pushAnswer)
        }
        let limit = cached == nil ? pages.pushAnswer : 0
        let (built, stored): ChangeLogRepository.PushOutcome
        switch input.stored {
        case .rows(let rows):
            (built, stored) = try await changeLog.push(
                .init(userID: user.id, appID: appID, clientID: clientID, idempotencyKey: key, rows: rows, since: since, limit: limit))
        case .changes(let indexed, let writeSpaces):
            do {
                (built, stored) = try await changeLog.push(
                    userID: user.id, appID: appID, clientID: clientID, changes: indexed.map(\.change), tables: tables, since: since,
                    idempotencyKey: key, limit: limit, writeSpaces: writeSpaces, readSpaces: scope.spaces)
            } catch let moved as SpaceAuthorization.RecordMoved where indexed.indices.contains(moved.index) {
                let (index, change) = indexed[moved.index]
                throw SpaceAuthorization.conflict(index: index, recorded: moved.recorded, wanted: change.spaceID ?? "")
            }
        }
        let page = cached.map(Answer.cut) ?? .built(built)
        if stored > 0 {
            metrics.count("sync_changes_stored_total", by: stored)
            notifier.announce(userID: user.id, appID: appID, clientID: clientID, tables: tables, spaces: writeSpaces)
        }
        if let own { noteAnswer(own, since: since, page: page) }
        metrics.count("sync_changes_returned_total", by: page.count)
        return Self.response(page, scope: scope, since: since)
    }

    /// Reads a push body as JSON values, member by member and change by change, each error
    /// naming its field (``Change/init(validating:index:)``), and authorizes the spaces it writes.
    func readPush(_ body: ByteBuffer, request: Request, userID: String, lookup: MembershipDirectory.Lookup) throws -> PushInput {
        let (clientID, body, indexed) = try Self.readChanges(
            try BodyDecoder.json(from: body), maximumChanges: maximumChanges, clientIDHeader: request.headers[.clientID])
        let tables = Array(Set(indexed.map(\.change.table))).sorted()
        let spaces = try SpaceAuthorization.spacesToCheck(indexed, userID: userID)
        try SpaceAuthorization.check(spaces, lookup: lookup, writeRoles: memberships.settings.writeRoles)
        let writeSpaces = Array(Set(spaces.map(\.space))).sorted()
        let since = try SyncRequest.cursor(body.since)
        return PushInput(clientID: clientID, since: since, tables: tables, stored: .changes(indexed, writeSpaces: writeSpaces))
    }

    /// A push body's client id, members and changes to store (with their index in the push),
    /// each checked with the 400 that names it, in the order the original checked them.
    static func readChanges(
        _ value: JSONValue, maximumChanges: Int, clientIDHeader: String?
    ) throws -> (clientID: String, body: PushBody, changes: [(index: Int, change: Change)]) {
        let body = try PushBody(value)
        let clientID = try SyncRequest.clientID(header: clientIDHeader, body: body.clientId)
        guard case .array(let rawChanges)? = body.changes else {
            throw APIError.badRequest("changes must be an array", field: "changes")
        }
        guard rawChanges.count <= maximumChanges else {
            throw APIError.tooLarge("a push carries at most \(maximumChanges) changes (SYNC_MAX_CHANGES), not \(rawChanges.count)")
        }
        if let version = body.schemaVersion {
            try Change.checkSchemaVersion(version) { APIError.badRequest("schemaVersion \($0)", field: "schemaVersion") }
        }
        // Updates of internal keys only change nothing: accepted, not stored.
        let indexed = try rawChanges.enumerated().map { (index: $0, change: try Change(validating: $1, index: $0)) }
            .filter { !$0.change.changesNothing }
        return (clientID, body, indexed)
    }

    /// `GET :appId/pull?collection&since`: one page of a table's changes.
    @Sendable func pull(_ request: Request, context: AppRequestContext) async throws -> JSONResponse {
        let user = try context.requireUser()
        let appID = try SyncRequest.appID(context)
        try await gate.check(userID: user.id)
        let query = request.uri.queryParameters
        guard let collection = query["collection"].map(String.init), !collection.isEmpty else {
            throw APIError.badRequest("collection is required", field: "collection")
        }
        guard let sinceText = query["since"].map(String.init) else { throw APIError.badRequest("since is required", field: "since") }
        let since = try SyncRequest.cursor(.string(sinceText))
        let limit = try QueryParameter.integer(request, "limit", default: pages.pullDefault, in: 1...5_000)
        let clientID = request.headers[.clientID].flatMap { $0.isEmpty ? nil : $0 }
        let scope = ReadScope(await memberships.lookup(userID: user.id))
        let own = scope == .own ? LogSegments.Key(user: user.id, app: appID) : nil
        let cached = own.flatMap { segments.fullPage($0, table: collection, excludingClient: clientID, since: since, limit: limit) }
        let page: Answer
        if let cached {
            page = .cut(cached)
        } else {
            page = .built(
                try await changeLog.pullText(
                    userID: user.id, appID: appID, table: collection, since: since, excludingClient: clientID, limit: limit,
                    spaces: scope.spaces))
        }
        if let own { noteAnswer(own, since: since, page: page) }
        metrics.count("sync_changes_returned_total", by: page.count)
        return Self.response(page, scope: scope, since: since)
    }

    /// Counts a page cut from memory; a full page PostgreSQL built is noted. When pages of this
    /// log overlap (``LogSegments/noteFullPage(_:since:last:now:)``), or a page was cut from the
    /// second half of a held stretch (``LogSegments/readsAhead(_:after:)``), the stretch from
    /// `since` is read in the background for the next ones.
    private func noteAnswer(_ key: LogSegments.Key, since: Int64, page: Answer) {
        switch page {
        case .cut(let cut):
            metrics.count("sync_page_cache_hits_total")
            guard segments.readsAhead(key, after: cut) else { return }
        case .built(let built):
            guard built.hasMore, segments.noteFullPage(key, since: since, last: built.syncedUntil) else { return }
        }
        metrics.count("sync_page_cache_reads_total")
        let (changeLog, segments, metrics) = (self.changeLog, self.segments, self.metrics)
        Task {
            do {
                segments.store(key, try await changeLog.segment(userID: key.user, appID: key.app, since: since, rows: segments.settings.rows))
                metrics.set("sync_page_cache_bytes", to: Double(segments.bytes))
            } catch {
                segments.abandon(key)
                changeLog.logger.warning("page cache: reading a log segment failed", metadata: ["error": "\(String(reflecting: error))"])
            }
        }
    }

    // MARK: Input

    /// A page to answer with: as PostgreSQL built it, or found in a held stretch of the log.
    enum Answer {
        case built(ChangeLogRepository.PageText)
        case cut(LogSegments.Cut)

        var count: Int {
            switch self {
            case .built(let page): page.count
            case .cut(let cut): cut.count
            }
        }
        var syncedUntil: Int64 {
            switch self {
            case .built(let page): page.syncedUntil
            case .cut(let cut): cut.syncedUntil
            }
        }
        var hasMore: Bool {
            switch self {
            case .built(let page): page.hasMore
            case .cut: true
            }
        }
    }

    /// `{"conflicts":[],"serverChanges":[...],"syncedUntil","hasMore"}` around the page's text,
    /// written into one buffer. While memberships cannot be resolved the answer has own rows
    /// only, and its cursor stays at `since` (rows of the user's spaces behind it must not be skipped).
    static func response(_ page: Answer, scope: ReadScope = .own, since: Int64 = 0) -> JSONResponse {
        let degraded = scope == .degraded
        let opening: StaticString = #"{"conflicts":[],"serverChanges":"#
        let (syncedUntil, hasMore) = degraded ? (since, false) : (page.syncedUntil, page.hasMore)
        let body: ByteBuffer
        switch page {
        case .built(let built):
            body = StoredChange.pageBuffer(opening: opening, changes: built.changes, syncedUntil: syncedUntil, hasMore: hasMore)
        case .cut(let cut):
            body = StoredChange.pageBuffer(opening: opening, size: cut.size, syncedUntil: syncedUntil, hasMore: hasMore) { cut.write(into: &$0) }
        }
        return JSONResponse(rawJSON: body, headers: degraded ? ReadScope.degradedHeader : [:])
    }
}
