import HTTPKit
import NIOCore

/// A change as read back from `sync.changes`, with `data` and `fields` kept as the JSON text
/// PostgreSQL returns for them: pages of changes are written to clients without decoding and
/// re-encoding every value (a pull of 1,000 changes spent most of its time there).
struct StoredChange: Sendable, Equatable {
    let table: String
    let id: String
    let op: Change.Operation
    /// JSON text of the whole record (`insert`).
    let data: String?
    /// JSON text of field name → `{value, updatedAt}` (`update`).
    let fields: String?
    /// Soft-delete time as the client sent it (`delete`).
    let deletedAt: String?
    /// The stored change's own id (a UUID), stable across reads.
    let eventID: String
    /// JSON text of the change's other keys (`spaceId`, `actor`, …), as the client sent them.
    let extra: String?
    /// The client that pushed it (not served; streams that share a read leave out their own).
    var clientID: String? = nil

    /// Appends the change as a JSON object, in the shape it came in.
    func appendJSON(to out: inout [UInt8]) {
        Change.appendHead(table: table, id: id, op: op, to: &out)
        if let data {
            out.append(contentsOf: #","data":"#.utf8)
            out.append(contentsOf: data.utf8)
        }
        if let fields {
            out.append(contentsOf: #","fields":"#.utf8)
            out.append(contentsOf: fields.utf8)
        }
        if let deletedAt {
            out.append(contentsOf: #","deletedAt":"#.utf8)
            JSONText.appendString(deletedAt, to: &out)
        }
        // The extras' members, spliced in from the stored object's text ("{...}").
        if let extra, extra.utf8.count > 2 {
            out.append(UInt8(ascii: ","))
            out.append(contentsOf: extra.utf8.dropFirst().dropLast())
        }
        out.append(contentsOf: #","eventId":""#.utf8)
        out.append(contentsOf: eventID.utf8)
        out.append(contentsOf: #""}"#.utf8)
    }

    /// An SSE `changes` event: `{"table","changes":[...],"syncedUntil","hasMore"}`.
    static func eventJSON(_ changes: [StoredChange], table: String, syncedUntil: Int64, hasMore: Bool) -> [UInt8] {
        pageJSON(opening: eventOpening(table), syncedUntil: syncedUntil, hasMore: hasMore, capacity: 64 + changes.count * 160) { out in
            out.append(UInt8(ascii: "["))
            for (index, change) in changes.enumerated() {
                if index > 0 { out.append(UInt8(ascii: ",")) }
                change.appendJSON(to: &out)
            }
            out.append(UInt8(ascii: "]"))
        }
    }

    /// The same event around a page PostgreSQL built as JSON text.
    static func eventJSON(_ page: ChangeLogRepository.PageText, table: String) -> [UInt8] {
        pageJSON(opening: eventOpening(table), syncedUntil: page.syncedUntil, hasMore: page.hasMore, capacity: page.changes.readableBytes) {
            $0.append(contentsOf: page.changes.readableBytesView)
        }
    }

    private static func eventOpening(_ table: String) -> [UInt8] {
        var opening = Array(#"{"table":"#.utf8)
        JSONText.appendString(table, to: &opening)
        opening.append(contentsOf: #","changes":"#.utf8)
        return opening
    }

    /// ``pageJSON(opening:syncedUntil:hasMore:capacity:changes:)``'s envelope around a page
    /// PostgreSQL built, written into one buffer: the page's bytes are copied once, from the
    /// database's message to the response (a page of 1,000 changes is ~200 KB).
    static func pageBuffer(opening: StaticString, changes: ByteBuffer, syncedUntil: Int64, hasMore: Bool) -> ByteBuffer {
        pageBuffer(opening: opening, size: changes.readableBytes, syncedUntil: syncedUntil, hasMore: hasMore) {
            $0.writeImmutableBuffer(changes)
        }
    }

    /// The same envelope around a changes array of `size` bytes that `changes` writes.
    static func pageBuffer(
        opening: StaticString, size: Int, syncedUntil: Int64, hasMore: Bool, changes: (inout ByteBuffer) -> Void
    ) -> ByteBuffer {
        var out = ByteBuffer()
        out.reserveCapacity(opening.utf8CodeUnitCount + size + 64)
        out.writeStaticString(opening)
        changes(&out)
        out.writeString(closing(syncedUntil: syncedUntil, hasMore: hasMore))
        return out
    }

    /// `{<opening><changes array>,"syncedUntil":"…","hasMore":…}`: the one envelope of push and
    /// pull answers (opening `"conflicts":[],"serverChanges":`) and SSE events.
    static func pageJSON(
        opening: [UInt8], syncedUntil: Int64, hasMore: Bool, capacity: Int, changes: (inout [UInt8]) -> Void
    ) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(capacity + opening.count + 64)
        out.append(contentsOf: opening)
        changes(&out)
        out.append(contentsOf: closing(syncedUntil: syncedUntil, hasMore: hasMore).utf8)
        return out
    }

    /// The envelope's end after the changes: `,"syncedUntil":"…","hasMore":…}`.
    private static func closing(syncedUntil: Int64, hasMore: Bool) -> String {
        #","syncedUntil":""# + Timestamp.format(microseconds: syncedUntil) + (hasMore ? #"","hasMore":true}"# : #"","hasMore":false}"#)
    }
}
