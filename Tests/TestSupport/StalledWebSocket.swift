import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// A WebSocket client that authenticates and then never reads again, with a tiny receive
/// buffer: the server's writes to it soon block, as they would for a stalled browser tab.
package final class StalledWebSocket: Sendable {
    private let fd: Int32

    /// Connects to `path`, upgrades, sends the auth message and reads the first answer, on a
    /// thread of ``Blocking`` (the reads block until the server answers).
    package static func connect(port: Int, path: String, token: String) async throws -> StalledWebSocket {
        try await Blocking.run { try StalledWebSocket(port: port, path: path, token: token) }
    }

    private init(port: Int, path: String, token: String) throws {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw StalledError.socket }
        var small: Int32 = 2048
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, socklen_t(MemoryLayout<Int32>.size))
        // A server that never answers fails the test instead of holding the thread.
        var wait = timeval(tv_sec: 60, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &wait, socklen_t(MemoryLayout<timeval>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0 else { throw StalledError.connect }
        try send(Array(
            ("GET \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                + "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n").utf8))
        var response = [UInt8]()
        while !response.suffix(4).elementsEqual([13, 10, 13, 10]) {
            var byte: UInt8 = 0
            guard read(fd, &byte, 1) == 1 else { throw StalledError.handshake }
            response.append(byte)
        }
        guard String(decoding: response, as: UTF8.self).hasPrefix("HTTP/1.1 101") else { throw StalledError.handshake }
        // A masked text frame (mask 0) with the auth message.
        let payload = Array(#"{"type":"auth","token":"\#(token)"}"#.utf8)
        var frame: [UInt8] = [0x81]
        if payload.count < 126 {
            frame.append(0x80 | UInt8(payload.count))
        } else {
            frame += [0x80 | 126, UInt8(payload.count >> 8), UInt8(payload.count & 0xff)]
        }
        frame += [0, 0, 0, 0] + payload
        try send(frame)
        var answer = [UInt8](repeating: 0, count: 64)
        guard read(fd, &answer, 64) > 2, String(decoding: answer[2...], as: UTF8.self).contains("auth-ok") else {
            throw StalledError.auth
        }
    }

    private func send(_ bytes: [UInt8]) throws {
        var offset = 0
        while offset < bytes.count {
            let sent = bytes[offset...].withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            guard sent > 0 else { throw StalledError.write }
            offset += sent
        }
    }

    package func close() { _ = Glibc.close(fd) }

    package enum StalledError: Error { case socket, connect, handshake, auth, write }
}
