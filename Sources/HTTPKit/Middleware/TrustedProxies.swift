import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Which `X-Forwarded-For` entries to believe, for per-client limits (`TRUSTED_PROXIES`).
///
/// A client can send any `X-Forwarded-For` it likes; a proxy only *appends* the address it
/// saw. So the header is read from the right: with `hops(1)` the right-most entry (the one
/// the nearest proxy appended), with `hops(2)` the second from the right, and with a list of
/// networks every entry inside them is skipped and the first other one taken.
///
/// ```swift
/// let proxies = try TrustedProxies(parsing: "10.0.0.0/8, fd00::/8")
/// proxies.clientAddress(peer: "10.1.2.3", forwardedFor: "6.6.6.6, 198.51.100.7")  // "198.51.100.7"
/// ```
package enum TrustedProxies: Sendable, Equatable {
    /// No proxy: the connection's peer is the client; `X-Forwarded-For` is ignored.
    case none
    /// This many proxies, each appending one entry.
    case hops(Int)
    /// Proxies at these addresses.
    case networks([Network])

    /// `""` or `none`; a whole number of hops (1–10); or comma-separated addresses and CIDR networks.
    package init(parsing text: String) throws {
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        if trimmed.isEmpty || trimmed.lowercased() == "none" {
            self = .none
        } else if let hops = Int(trimmed) {
            guard (1...10).contains(hops) else { throw ParseError(text: text) }
            self = .hops(hops)
        } else {
            let networks = try trimmed.split(separator: ",").map { part in
                guard let network = Network(String(part).trimmingCharacters(in: .whitespaces)) else { throw ParseError(text: String(part)) }
                return network
            }
            self = .networks(networks)
        }
    }

    package struct ParseError: Error, CustomStringConvertible {
        let text: String
        package var description: String { "'\(text)' is not none, a number of hops from 1 to 10, or a list of addresses/CIDR networks" }
    }

    /// The client's address: the peer, or the entry of `X-Forwarded-For` these proxies vouch for.
    package func clientAddress(peer: String?, forwardedFor: String?) -> String {
        let peerAddress = peer ?? "unknown"
        let entries = (forwardedFor ?? "").split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        switch self {
        case .none:
            return peerAddress
        case .hops(let hops):
            guard !entries.isEmpty else { return peerAddress }
            // A shorter chain than configured: the left-most entry is the farthest any proxy saw.
            return entries.count >= hops ? entries[entries.count - hops] : entries[0]
        case .networks(let networks):
            func trusted(_ address: String) -> Bool { networks.contains { $0.contains(address) } }
            // Only a trusted peer's header means anything.
            guard trusted(peerAddress) else { return peerAddress }
            for entry in entries.reversed() where !trusted(entry) { return entry }
            return entries.first ?? peerAddress
        }
    }

    /// An IPv4 or IPv6 network: an address and a prefix length (a bare address is one host).
    package struct Network: Sendable, Equatable {
        let bytes: [UInt8]
        let prefix: Int

        package init?(_ text: String) {
            let parts = text.split(separator: "/", maxSplits: 1).map(String.init)
            guard let first = parts.first, let bytes = Self.bytes(of: first) else { return nil }
            let bits = bytes.count * 8
            if parts.count == 2 {
                guard let prefix = Int(parts[1]), (0...bits).contains(prefix) else { return nil }
                self.prefix = prefix
            } else {
                self.prefix = bits
            }
            self.bytes = bytes
        }

        /// True when `address` is inside this network (an IPv4-mapped IPv6 address counts as IPv4).
        package func contains(_ address: String) -> Bool {
            guard var candidate = Self.bytes(of: address) else { return false }
            if bytes.count == 4, candidate.count == 16, candidate.prefix(12) == [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff] {
                candidate = Array(candidate.suffix(4))
            }
            guard candidate.count == bytes.count else { return false }
            var remaining = prefix
            for (a, b) in zip(bytes, candidate) where remaining > 0 {
                let mask: UInt8 = remaining >= 8 ? 0xff : ~(0xff >> UInt8(remaining))
                if a & mask != b & mask { return false }
                remaining -= 8
            }
            return true
        }

        /// The address's bytes: 4 for IPv4, 16 for IPv6; nil when it is neither.
        static func bytes(of text: String) -> [UInt8]? {
            var v4 = in_addr()
            if inet_pton(AF_INET, text, &v4) == 1 { return withUnsafeBytes(of: &v4) { Array($0) } }
            var v6 = in6_addr()
            if inet_pton(AF_INET6, text, &v6) == 1 { return withUnsafeBytes(of: &v6) { Array($0) } }
            return nil
        }
    }
}
