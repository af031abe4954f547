import Foundation
import Logging
import PostgresNIO

/// One ordered SQL migration, from a file named `NNNN_description.sql`.
package struct Migration: Sendable, Equatable {
    package let version: Int
    package let name: String
    package let sql: String

    package init(version: Int, name: String, sql: String) {
        self.version = version
        self.name = name
        self.sql = sql
    }

    /// A stable fingerprint of the SQL (FNV-1a, 64 bit), to notice a file edited after it ran.
    package var checksum: String {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in sql.utf8 {
            hash ^= UInt64(byte)
            hash = hash &* 0x100_0000_01b3
        }
        return String(hash, radix: 16)
    }

    /// Loads the `Migrations` resource folder of a module's bundle.
    package static func load(bundle: Bundle, service: String) throws -> [Migration] {
        guard let directory = bundle.url(forResource: "Migrations", withExtension: nil) else {
            throw MigrationError("the Migrations resource folder is missing from the \(service) bundle")
        }
        return try load(from: directory)
    }

    /// Loads every `NNNN_name.sql` file of a folder, ordered by version.
    package static func load(from directory: URL) throws -> [Migration] {
        let files = try FileManager.default.contentsOfDirectory(at: directory, includingPropertiesForKeys: nil)
        var migrations: [Migration] = []
        for file in files where file.pathExtension == "sql" {
            let base = file.deletingPathExtension().lastPathComponent
            guard let separator = base.firstIndex(of: "_"), let version = Int(base[..<separator]) else {
                throw MigrationError("migration file \(file.lastPathComponent) is not named NNNN_description.sql")
            }
            let sql = try String(contentsOf: file, encoding: .utf8)
            migrations.append(Migration(version: version, name: String(base[base.index(after: separator)...]), sql: sql))
        }
        migrations.sort { $0.version < $1.version }
        for (previous, next) in zip(migrations, migrations.dropFirst()) where previous.version == next.version {
            throw MigrationError("two migrations have version \(next.version)")
        }
        return migrations
    }
}

/// A migration problem: a failing statement, a changed file, a bad name.
package struct MigrationError: Error, CustomStringConvertible {
    package let description: String
    package init(_ description: String) { self.description = description }
}

/// Applies pending migrations in order and records them in `schema_migrations`.
///
/// All pending migrations run in one transaction that first takes a transaction-level
/// advisory lock, so replicas starting together migrate once (the others wait, then find
/// nothing to do) and a crash leaves no half-applied migration and no lock behind.
package struct MigrationRunner: Sendable {
    let client: PostgresClient
    let migrations: [Migration]
    let lockName: String
    let logger: Logger

    /// - Parameter lockName: names the advisory lock; one per database schema owner.
    package init(client: PostgresClient, migrations: [Migration], lockName: String, logger: Logger) {
        self.client = client
        self.migrations = migrations.sorted { $0.version < $1.version }
        self.lockName = lockName
        self.logger = logger
    }

    /// Applies what is pending and returns the versions it applied.
    ///
    /// A lost or refused connection (PostgreSQL restarting, the backend terminated, a
    /// failover) is retried with backoff for up to `retryingFor`; the transaction rolled back,
    /// so a retry starts clean. A failing statement or an edited migration is not retried.
    @discardableResult
    package func run(retryingFor window: Duration = .zero) async throws -> [Int] {
        let migrations = self.migrations
        let lockName = self.lockName
        let logger = self.logger
        let deadline = ContinuousClock.now + window
        var pause = Duration.milliseconds(100)
        while true {
            do {
                return try await apply(migrations: migrations, lockName: lockName, logger: logger)
            } catch where Self.isTransient(error) && ContinuousClock.now + pause < deadline {
                logger.warning(
                    "migrations could not reach the database; retrying",
                    metadata: ["error": "\(String(reflecting: error))", "retry_in": "\(pause)"])
                try await Task.sleep(for: pause)
                pause = min(pause * 2, .seconds(2))
            }
        }
    }

    /// How long `serve` and `migrate` retry a database they cannot reach at startup.
    package static let startupRetryWindow: Duration = .seconds(60)

    /// A connection problem, not a problem of the migrations themselves.
    static func isTransient(_ error: any Error) -> Bool {
        switch error {
        case is DatabaseConnectionLost: true
        case let error as PSQLError: error.isConnectionProblem
        default: false
        }
    }

    private func apply(migrations: [Migration], lockName: String, logger: Logger) async throws -> [Int] {
        try await client.withGuardedTransaction(logger: logger) { connection in
            try await connection.query("SELECT pg_advisory_xact_lock(hashtext(\(lockName)))", logger: logger)
            try await connection.query(
                """
                CREATE TABLE IF NOT EXISTS schema_migrations (
                    version integer PRIMARY KEY,
                    name text NOT NULL,
                    checksum text NOT NULL,
                    applied_at timestamptz NOT NULL DEFAULT now()
                )
                """, logger: logger)
            var applied: [Int: String] = [:]
            for try await (version, checksum) in try await connection.query(
                "SELECT version, checksum FROM schema_migrations", logger: logger
            ).decode((Int, String).self) {
                applied[version] = checksum
            }
            var newlyApplied: [Int] = []
            for migration in migrations {
                if let checksum = applied[migration.version] {
                    if checksum != migration.checksum {
                        throw MigrationError(
                            "migration \(migration.version) (\(migration.name)) was changed after it was applied")
                    }
                    continue
                }
                for statement in SQLScript.statements(migration.sql) {
                    do {
                        try await connection.query(PostgresQuery(unsafeSQL: statement), logger: logger)
                    } catch let error as PSQLError where !Self.isTransient(error) {
                        let reason = error.serverInfo?[.message] ?? "\(error.code)"
                        throw MigrationError("migration \(migration.version) (\(migration.name)) failed: \(reason)")
                    }
                }
                try await connection.query(
                    "INSERT INTO schema_migrations (version, name, checksum) VALUES (\(migration.version), \(migration.name), \(migration.checksum))",
                    logger: logger)
                logger.info("applied migration", metadata: ["version": "\(migration.version)", "name": "\(migration.name)"])
                newlyApplied.append(migration.version)
            }
            return newlyApplied
        }
    }
}
