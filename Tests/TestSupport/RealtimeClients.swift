import AsyncHTTPClient
import Foundation
import HTTPKit
import HummingbirdWSClient
import Logging
import NIOCore
import NIOHTTP1
import Synchronization

/// A real WebSocket client for tests: connects, records every text message, sends on demand,
/// and reports how the server closed the connection.
package final class WSProbe: Sendable {
    private let messages = Shared<[String]>([])
    /// How the connection ended (nil while it lasts): the error text when it failed.
    private let ending = Shared<String??>(nil)
    private let outgoing: AsyncStream<String>.Continuation
    private let task: Task<WebSocketCloseFrame?, any Error>

    package init(url: String) {
        let (stream, continuation) = AsyncStream<String>.makeStream()
        outgoing = continuation
        let messages = self.messages
        let ending = self.ending
        task = Task {
            do {
                let frame = try await Self.run(url: url, stream: stream, messages: messages)
                ending.withLock { $0 = .some(nil) }
                return frame
            } catch {
                ending.withLock { $0 = .some("\(error)") }
                throw error
            }
        }
    }

    private static func run(url: String, stream: AsyncStream<String>, messages: Shared<[String]>) async throws -> WebSocketCloseFrame? {
        try await WebSocketClient.connect(url: url, configuration: .init(maxFrameSize: 1 << 20), logger: TestDatabase.logger) { inbound, outbound, _ in
            await withTaskGroup(of: Void.self) { group in
                group.addTask {
                    for await text in stream { try? await outbound.write(.text(text)) }
                    try? await outbound.close(.normalClosure, reason: nil)
                }
                do {
                    for try await message in inbound.messages(maxSize: 1 << 20) {
                        if case .text(let text) = message { messages.withLock { $0.append(text) } }
                    }
                } catch {}
                group.cancelAll()
            }
        }
    }

    /// Opens a connection and authenticates; waits for `auth-ok`. A connection that never
    /// opened (refused or reset while the machine is busy), or that the server closed for its
    /// auth deadline before reading the auth message, is tried again, as a client would,
    /// up to three times; one that opened and got no `auth-ok` within `limit` fails at once.
    package static func authenticated(
        _ url: String, token: String, clientID: String? = nil, within limit: Duration = .seconds(10)
    ) async throws -> WSProbe {
        var auth: JSONValue = ["type": "auth", "token": .string(token)]
        if let clientID, case .object(var fields) = auth {
            fields["clientId"] = .string(clientID)
            auth = .object(fields)
        }
        var failure = ProbeError.notAuthenticated([])
        for _ in 0..<3 {
            let probe = WSProbe(url: url)
            probe.send(auth)
            let deadline = ContinuousClock.now + limit
            while ContinuousClock.now < deadline, probe.count == 0, probe.ending.withLock({ $0 }) == nil {
                try? await Task.sleep(for: .milliseconds(10))
            }
            if await probe.waitFor(within: .zero, { $0["type"] == "auth-ok" }) != nil { return probe }
            guard probe.count == 0, let ending = probe.ending.withLock({ $0 }) else {
                throw ProbeError.notAuthenticated(probe.received)
            }
            if let error = ending {
                failure = .connectionFailed(error)
            } else if let frame = await probe.closeFrame(within: .zero), frame?.reason == "authentication timeout" {
                // The server's auth deadline passed before it read our auth message (a short
                // deadline on a busy machine): a client reconnects.
                failure = .connectionFailed("closed: authentication timeout")
            } else {
                throw ProbeError.notAuthenticated(probe.received)
            }
        }
        throw failure
    }

    package enum ProbeError: Error {
        case notAuthenticated([JSONValue])
        case connectionFailed(String)
    }

    package func send(_ text: String) { outgoing.yield(text) }
    package func send(_ json: JSONValue) { send(String(decoding: try! JSONEncoder().encode(json), as: UTF8.self)) }

    /// How many messages arrived so far.
    package var count: Int { messages.withLock { $0.count } }

    /// Every message so far, decoded.
    package var received: [JSONValue] {
        messages.withLock { $0 }.map { (try? JSONDecoder().decode(JSONValue.self, from: Data($0.utf8))) ?? .string($0) }
    }

    /// The first message matching `match` (waiting up to `limit`), or nil.
    package func waitFor(within limit: Duration = .seconds(10), _ match: (JSONValue) -> Bool) async -> JSONValue? {
        let deadline = ContinuousClock.now + limit
        while ContinuousClock.now < deadline {
            if let found = received.first(where: match) { return found }
            try? await Task.sleep(for: .milliseconds(10))
        }
        return received.first(where: match)
    }

    /// The close frame the server sent, waiting up to `limit`; nil when still open.
    package func closeFrame(within limit: Duration = .seconds(10)) async -> WebSocketCloseFrame?? {
        guard await finishes(task, within: limit) else { return nil }
        return .some(try? await task.value)
    }

    /// Closes from the client side.
    package func close() async {
        outgoing.finish()
        _ = await finishes(task, within: .seconds(5))
    }
}

/// A real SSE client: reads the event stream of one request and records its events.
package final class SSEProbe: Sendable {
    package struct Event: Sendable {
        package let name: String
        package let data: JSONValue
        package let at: ContinuousClock.Instant
    }

    private let events = Shared<[Event]>([])
    private let status = Shared<Int?>(nil)
    private let task: Task<Void, any Error>

    package init(url: String, headers: [(String, String)]) {
        let client = HTTPClient.shared
        let events = self.events
        let status = self.status
        task = Task {
            var request = HTTPClientRequest(url: url)
            for (name, value) in headers { request.headers.add(name: name, value: value) }
            let response = try await client.execute(request, timeout: .seconds(600))
            status.withLock { $0 = Int(response.status.code) }
            var buffer = ""
            for try await chunk in response.body {
                buffer += String(buffer: chunk)
                while let range = buffer.range(of: "\n\n") {
                    let block = buffer[..<range.lowerBound]
                    buffer = String(buffer[range.upperBound...])
                    var name = "message"
                    var data = ""
                    for line in block.split(separator: "\n") {
                        if line.hasPrefix("event: ") { name = String(line.dropFirst(7)) }
                        if line.hasPrefix("data: ") { data += line.dropFirst(6) }
                    }
                    let json = (try? JSONDecoder().decode(JSONValue.self, from: Data(data.utf8))) ?? .string(data)
                    events.withLock { $0.append(Event(name: name, data: json, at: .now)) }
                }
            }
        }
    }

    package var received: [Event] { events.withLock { $0 } }
    package var statusCode: Int? { status.withLock { $0 } }

    /// Waits until `count` events of `name` arrived (up to `limit`); returns them.
    package func waitFor(_ name: String, count: Int = 1, within limit: Duration = .seconds(10)) async -> [Event] {
        let deadline = ContinuousClock.now + limit
        while ContinuousClock.now < deadline {
            let matching = received.filter { $0.name == name }
            if matching.count >= count { return matching }
            try? await Task.sleep(for: .milliseconds(5))
        }
        return received.filter { $0.name == name }
    }

    /// Whether the server ended the stream within `limit`.
    package func ended(within limit: Duration) async -> Bool {
        await finishes(task, within: limit)
    }

    package func close() async {
        task.cancel()
        _ = await finishes(task, within: .seconds(5))
    }
}

/// A value shared between tasks behind a lock (a class, so closures can hold it).
package final class Shared<Value: Sendable>: Sendable {
    private let mutex: Mutex<Value>
    package init(_ value: Value) { mutex = Mutex(value) }
    package func withLock<T>(_ body: (inout Value) -> T) -> T { mutex.withLock { body(&$0) } }
}
