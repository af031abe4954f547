import AsyncHTTPClient
import Foundation
import HTTPKit
import JWTKit
import Logging
import NIOCore
import Synchronization

/// The verification keys of mana-auth, loaded from its JWKS document.
///
/// `JWKS_URL` may be `http(s)://` (fetched with AsyncHTTPClient) or `file://` (local
/// development). Keys are refreshed periodically by ``JWKSRefreshService``; a token naming
/// an unknown `kid` triggers ``refetchForUnknownKey()``, which fetches at most once per
/// `minimumRefetchInterval` however many such tokens arrive (concurrent callers share one
/// fetch). A failed fetch keeps the keys already held and logs a warning.
package actor JWKSKeyStore {
    /// A usable key: its jwt-kit collection entry and the one algorithm it verifies.
    package struct Key: Sendable {
        package let kid: String
        package let algorithm: String
    }

    let url: String
    let httpClient: HTTPClient
    let minimumRefetchInterval: Duration
    let fetchTimeout: Duration
    let logger: Logger
    private(set) var collection = JWTKeyCollection()
    private(set) var keys: [String: Key] = [:]
    private var lastFetch: ContinuousClock.Instant?
    private var inFlight: Task<Void, Never>?
    /// How many fetches were attempted (for tests and metrics).
    package private(set) var fetchCount = 0
    /// Goes up whenever a fetch installs a document different from the one held, so what was
    /// verified with the old keys (``VerifiedTokenCache``) is not trusted any more.
    private let keySetNumber = Mutex(0)
    private var installedDocument: Data?

    /// The number of the key set now held (see `keySetNumber`); readable without the actor.
    package nonisolated var keySet: Int { keySetNumber.withLock { $0 } }

    package init(
        url: String, httpClient: HTTPClient = .shared, minimumRefetchInterval: Duration = .seconds(5), fetchTimeout: Duration = .seconds(5),
        logger: Logger
    ) {
        self.url = url
        self.httpClient = httpClient
        self.minimumRefetchInterval = minimumRefetchInterval
        self.fetchTimeout = fetchTimeout
        self.logger = logger
    }

    /// The key for `kid`, or nil.
    package func key(for kid: String) -> Key? {
        keys[kid]
    }

    /// Fetches the document now (periodic refresh, start-up). Concurrent callers share one fetch.
    package func refresh() async {
        if let inFlight {
            await inFlight.value
            return
        }
        let task = Task { await self.fetchAndInstall() }
        inFlight = task
        await task.value
        inFlight = nil
    }

    /// Fetches again for a token with an unknown `kid`, unless a fetch happened within the
    /// minimum interval. Returns after the fetch (or at once when rate limited).
    package func refetchForUnknownKey() async {
        if inFlight == nil, let lastFetch, ContinuousClock.now - lastFetch < minimumRefetchInterval {
            return
        }
        await refresh()
    }

    private func fetchAndInstall() async {
        lastFetch = .now
        fetchCount += 1
        do {
            let data = try await fetchDocument()
            let (collection, keys) = try await Self.parse(data, logger: logger)
            self.collection = collection
            self.keys = keys
            if data != installedDocument {
                installedDocument = data
                keySetNumber.withLock { $0 += 1 }
            }
            logger.debug("loaded JWKS", metadata: ["keys": "\(keys.count)"])
        } catch {
            logger.warning("could not load the JWKS; keeping the keys held", metadata: ["error": "\(error)", "url": "\(url)"])
        }
    }

    private func fetchDocument() async throws -> Data {
        if url.hasPrefix("file://") {
            guard let path = URL(string: url)?.path else { throw JWKSError("bad file URL") }
            return try Data(contentsOf: URL(fileURLWithPath: path))
        }
        var request = HTTPClientRequest(url: url)
        request.headers.add(name: "Accept", value: "application/json")
        let response = try await httpClient.execute(request, timeout: TimeAmount(fetchTimeout))
        guard response.status == .ok else { throw JWKSError("answered \(response.status.code)") }
        return Data(buffer: try await response.body.collect(upTo: 1 << 20))
    }

    /// Builds a key collection from a JWKS document, entry by entry: an entry that is not
    /// usable (unsupported type, missing `kid`, bad numbers) is skipped, not fatal.
    static func parse(_ data: Data, logger: Logger) async throws -> (JWTKeyCollection, [String: Key]) {
        struct Document: Decodable { let keys: [Entry] }
        struct Entry: Decodable {
            let kty: String?
            let kid: String?
            let crv: String?
            let x: String?
            let y: String?
            let n: String?
            let e: String?
            let alg: String?
            let use: String?
        }
        let document = try JSONDecoder().decode(Document.self, from: data)
        let collection = JWTKeyCollection()
        var keys: [String: Key] = [:]
        for entry in document.keys {
            guard let kid = entry.kid, !kid.isEmpty else { continue }
            if let use = entry.use, use != "sig" { continue }
            do {
                switch (entry.kty, entry.crv) {
                case ("OKP", "Ed25519"):
                    guard let x = entry.x, entry.alg == nil || entry.alg == "EdDSA" else { continue }
                    await collection.add(eddsa: try EdDSA.PublicKey(x: x, curve: .ed25519), kid: JWKIdentifier(string: kid))
                    keys[kid] = Key(kid: kid, algorithm: "EdDSA")
                case ("EC", "P-256"):
                    guard let x = entry.x, let y = entry.y, entry.alg == nil || entry.alg == "ES256" else { continue }
                    await collection.add(ecdsa: try ES256PublicKey(parameters: (x: x, y: y)), kid: JWKIdentifier(string: kid))
                    keys[kid] = Key(kid: kid, algorithm: "ES256")
                case ("RSA", _):
                    guard let n = entry.n, let e = entry.e, entry.alg == nil || entry.alg == "RS256" else { continue }
                    await collection.add(
                        rsa: try Insecure.RSA.PublicKey(modulus: n, exponent: e), digestAlgorithm: .sha256,
                        kid: JWKIdentifier(string: kid))
                    keys[kid] = Key(kid: kid, algorithm: "RS256")
                default:
                    continue
                }
            } catch {
                logger.warning("skipping an unusable JWKS key", metadata: ["kid": "\(kid)", "error": "\(error)"])
            }
        }
        // An unknown kid must never fall back to a default key.
        _ = await collection.clearDefault()
        return (collection, keys)
    }
}

struct JWKSError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
