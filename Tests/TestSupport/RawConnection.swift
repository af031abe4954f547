import Foundation
import NIOCore
import NIOPosix

/// A raw TCP connection for tests that must send what no well-behaved client sends: bytes
/// that are not UTF-8, requests trickled in a byte at a time.
package enum RawConnection {
    /// What a scripted exchange saw: the bytes the server sent and when it closed (nil: it
    /// did not close within the limit).
    package struct Outcome: Sendable {
        package let received: String
        package let closedAfter: Duration?

        /// The status code of the first response, if one arrived.
        package var status: Int? {
            guard received.hasPrefix("HTTP/1.1 ") else { return nil }
            return Int(received.dropFirst(9).prefix(3))
        }
    }

    /// Connects to 127.0.0.1:`port`, sends `chunks` one after the other with `gap` between
    /// them (stopping when the server closes), and reads until the server closes or `limit` passes.
    package static func exchange(port: Int, chunks: [[UInt8]], gap: Duration = .zero, limit: Duration) async throws -> Outcome {
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connect(host: "127.0.0.1", port: port) { channel in
                channel.eventLoop.makeCompletedFuture { try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel) }
            }
        let start = ContinuousClock.now
        let text = Shared("")
        let closedAfter: Duration? = try await channel.executeThenClose { inbound, outbound in
            await withTaskGroup(of: Duration?.self) { group in
                group.addTask {
                    do {
                        for chunk in chunks {
                            try await outbound.write(ByteBuffer(bytes: chunk))
                            if gap > .zero { try await Task.sleep(for: gap) }
                        }
                    } catch {}
                    try? await Task.sleep(until: start + limit, clock: .continuous)
                    return nil
                }
                group.addTask {
                    do {
                        for try await buffer in inbound {
                            let part = String(decoding: buffer.readableBytesView, as: UTF8.self)
                            text.withLock { $0 += part }
                        }
                    } catch {}
                    return ContinuousClock.now - start
                }
                let first = await group.next() ?? nil
                group.cancelAll()
                return first
            }
        }
        return Outcome(received: text.withLock { $0 }, closedAfter: closedAfter)
    }

    /// Splits text into single-byte chunks (for trickling it).
    package static func bytes(_ text: String) -> [[UInt8]] {
        Array(text.utf8).map { [$0] }
    }
}
