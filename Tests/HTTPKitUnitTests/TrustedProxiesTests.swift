import HTTPKit
import Testing

/// Which `X-Forwarded-For` entry names the client.
@Suite struct TrustedProxiesTests {
    @Test func withoutTrustedProxiesTheHeaderIsIgnored() throws {
        #expect(TrustedProxies.none.clientAddress(peer: "192.0.2.1", forwardedFor: "6.6.6.6") == "192.0.2.1")
        #expect(try TrustedProxies(parsing: "") == .none)
        #expect(try TrustedProxies(parsing: "none") == .none)
    }

    /// The client writes the left of the header; each proxy appends on the right.
    @Test func hopsCountFromTheRight() throws {
        let one = try TrustedProxies(parsing: "1")
        #expect(one.clientAddress(peer: "10.0.0.2", forwardedFor: "6.6.6.6, 198.51.100.7") == "198.51.100.7")
        #expect(one.clientAddress(peer: "10.0.0.2", forwardedFor: nil) == "10.0.0.2")
        let two = try TrustedProxies(parsing: "2")
        #expect(two.clientAddress(peer: "10.0.0.2", forwardedFor: "6.6.6.6, 198.51.100.7, 10.0.0.9") == "198.51.100.7")
        #expect(two.clientAddress(peer: "10.0.0.2", forwardedFor: "198.51.100.7") == "198.51.100.7")
        #expect(throws: TrustedProxies.ParseError.self) { try TrustedProxies(parsing: "0") }
    }

    @Test func networksAreSkippedFromTheRight() throws {
        let proxies = try TrustedProxies(parsing: "10.0.0.0/8, 192.0.2.5, fd00::/8")
        #expect(proxies.clientAddress(peer: "10.1.2.3", forwardedFor: "6.6.6.6, 198.51.100.7, 192.0.2.5") == "198.51.100.7")
        #expect(proxies.clientAddress(peer: "fd00::1", forwardedFor: "2001:db8::9") == "2001:db8::9")
        #expect(proxies.clientAddress(peer: "::ffff:10.0.0.1", forwardedFor: "198.51.100.8") == "198.51.100.8")
        // An untrusted peer's header means nothing.
        #expect(proxies.clientAddress(peer: "203.0.113.1", forwardedFor: "198.51.100.7") == "203.0.113.1")
        // Everything trusted: the left-most.
        #expect(proxies.clientAddress(peer: "10.0.0.1", forwardedFor: "10.0.0.3, 10.0.0.2") == "10.0.0.3")
        #expect(throws: TrustedProxies.ParseError.self) { try TrustedProxies(parsing: "10.0.0.0/33") }
        #expect(throws: TrustedProxies.ParseError.self) { try TrustedProxies(parsing: "proxy.local") }
    }
}
