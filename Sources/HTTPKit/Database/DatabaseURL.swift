import Foundation
import NIOSSL
import PostgresNIO

/// A parsed `DATABASE_URL`: `postgres://user:password@host:port/database?sslmode=...`.
///
/// `PostgresClient.Configuration` has no URL initialiser, so this is the one place that
/// reads the URL. `sslmode` follows libpq: `disable`, `prefer` (the default), `require`,
/// `verify-ca`, `verify-full`.
package struct DatabaseURL: Sendable, Equatable {
    package var host: String
    package var port: Int
    package var username: String
    package var password: String?
    package var database: String
    package var sslMode: String

    /// Parses the URL; the error never repeats the password.
    package init(_ text: String) throws {
        guard let components = URLComponents(string: text), let scheme = components.scheme?.lowercased(),
            scheme == "postgres" || scheme == "postgresql"
        else {
            throw DatabaseURLError("must be a postgres:// or postgresql:// URL")
        }
        guard let host = components.host, !host.isEmpty else { throw DatabaseURLError("has no host") }
        guard let user = components.user, !user.isEmpty else { throw DatabaseURLError("has no user name") }
        let database = components.path.hasPrefix("/") ? String(components.path.dropFirst()) : components.path
        guard !database.isEmpty, !database.contains("/") else { throw DatabaseURLError("has no database name in its path") }
        if let port = components.port, !(1...65535).contains(port) { throw DatabaseURLError("has an invalid port") }
        let sslMode = components.queryItems?.first(where: { $0.name == "sslmode" })?.value?.lowercased() ?? "prefer"
        let known = ["disable", "allow", "prefer", "require", "verify-ca", "verify-full"]
        guard known.contains(sslMode) else {
            throw DatabaseURLError("has sslmode '\(sslMode)'; use one of \(known.joined(separator: ", "))")
        }
        self.host = host
        self.port = components.port ?? 5432
        self.username = user.removingPercentEncoding ?? user
        self.password = components.password.map { $0.removingPercentEncoding ?? $0 }
        self.database = database.removingPercentEncoding ?? database
        self.sslMode = sslMode
    }

    /// The client configuration for this URL, with `maximumConnections` in the pool, of which
    /// `minimumConnections` stay open however idle.
    package func clientConfiguration(maximumConnections: Int = 20, minimumConnections: Int = 0) -> PostgresClient.Configuration {
        var tlsConfiguration = TLSConfiguration.makeClientConfiguration()
        let tls: PostgresClient.Configuration.TLS
        switch sslMode {
        case "disable":
            tls = .disable
        case "verify-ca":
            tlsConfiguration.certificateVerification = .noHostnameVerification
            tls = .require(tlsConfiguration)
        case "verify-full":
            tls = .require(tlsConfiguration)
        case "require":
            tlsConfiguration.certificateVerification = .none
            tls = .require(tlsConfiguration)
        default:  // allow, prefer: encrypt when offered, without verification (libpq's behaviour)
            tlsConfiguration.certificateVerification = .none
            tls = .prefer(tlsConfiguration)
        }
        var configuration = PostgresClient.Configuration(
            host: host, port: port, username: username, password: password, database: database, tls: tls)
        configuration.options.maximumConnections = maximumConnections
        configuration.options.connectTimeout = .seconds(5)
        // Every time a pooled connection goes idle, the pool starts a keep-alive timer (30 s)
        // and an idle timer (60 s) with `Task.sleep`; the next lease cancels them, and a
        // cancelled `Task.sleep` keeps its memory until its deadline (``timerSleep(for:)``
        // has the figures). No keep-alive queries, and idle connections close after 10 s: one
        // short timer per release. Keep-alive is moot then (no connection
        // stays idle long enough for a NAT or firewall to drop it), and a connection the
        // server closed is noticed by the pool at once.
        configuration.options.keepAliveBehavior = nil
        configuration.options.connectionIdleTimeout = .seconds(10)
        // The first `minimumConnections` connections of the pool get no idle timer at all:
        // under load, a timer started at each release and cancelled at the next lease (a
        // task and a sleep each time) cost 8 % of mana-sync's CPU per one-change push
        // (docs/benchmarks.md, session 43). They stay open, as the busy ones would anyway.
        configuration.options.minimumConnections = min(minimumConnections, maximumConnections)
        // No JIT compilation: every statement of ours is a short transaction, and PostgreSQL
        // compiles a plan whose estimated cost passes jit_above_cost (100,000; a page plan on a
        // large table can) with LLVM on every execution: 650 ms for a push whose work took
        // 0.2 ms (docs/benchmarks.md, session 35).
        configuration.options.additionalStartupParameters = [("jit", "off")]
        return configuration
    }

    /// The URL with the password masked, for logs.
    package var redacted: String {
        "postgresql://\(username)\(password == nil ? "" : ":***")@\(host):\(port)/\(database)?sslmode=\(sslMode)"
    }
}

/// What is wrong with a `DATABASE_URL` (without its password).
package struct DatabaseURLError: Error, CustomStringConvertible {
    package let description: String
    init(_ problem: String) { self.description = "DATABASE_URL \(problem)" }
}
