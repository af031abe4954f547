@testable import HTTPKit
import PostgresNIO
import Testing
import TestSupport

@Suite(.timeLimit(.minutes(3))) struct MigrationRunnerTests {
    static let migrations = [
        Migration(version: 1, name: "items", sql: "CREATE TABLE items (id int PRIMARY KEY); INSERT INTO items VALUES (1);"),
        Migration(version: 2, name: "more", sql: "ALTER TABLE items ADD COLUMN name text; INSERT INTO items VALUES (2, 'b');"),
        Migration(version: 3, name: "third", sql: "INSERT INTO items VALUES (3, 'c');"),
    ]

    static func runner(_ client: PostgresClient, _ migrations: [Migration] = migrations) -> MigrationRunner {
        MigrationRunner(client: client, migrations: migrations, lockName: "test-migrations", logger: TestDatabase.logger)
    }

    static func itemIDs(_ client: PostgresClient) async throws -> [Int] {
        var ids: [Int] = []
        for try await id in try await client.query("SELECT id FROM items ORDER BY id").decode(Int.self) { ids.append(id) }
        return ids
    }

    @Test func appliesInOrderAndRecordsEach() async throws {
        try await TestDatabase.withFreshDatabase { client, _ in
            let applied = try await Self.runner(client, Self.migrations.reversed()).run()
            #expect(applied == [3, 2, 1] || applied == [1, 2, 3])
            // Migration.load sorts by version; given a list, the runner keeps the list's order.
            var versions: [Int] = []
            for try await version in try await client.query("SELECT version FROM schema_migrations ORDER BY version").decode(Int.self) {
                versions.append(version)
            }
            #expect(versions == [1, 2, 3])
        }
    }

    /// The cause of a restart that never became ready: a service starting while its old
    /// backends are being terminated had its migration connection terminated, and stopped.
    /// A lost connection is retried (the transaction rolled back); a broken migration is not.
    @Test func aTerminatedMigrationConnectionIsRetried() async throws {
        try await TestDatabase.withFreshDatabase { client, url in
            let slow = Migration(version: 1, name: "slow", sql: "SELECT pg_sleep(5); CREATE TABLE items (id int PRIMARY KEY);")
            // Terminates the migration's backend as soon as it is seen sleeping (polling: a
            // loaded machine may start the migration late).
            @Sendable func terminateTheSlowMigration() async throws {
                try await TestDatabase.withClient(url) { other in
                    for _ in 0..<600 {
                        let terminated = try await other.query(
                            """
                            SELECT count(*)::int FROM (SELECT pg_terminate_backend(pid) AS done FROM pg_stat_activity
                                WHERE query LIKE 'SELECT pg_sleep(5)%' AND pid <> pg_backend_pid()) t WHERE done
                            """
                        ).decode(Int.self).reduce(0, +)
                        if terminated > 0 { return }
                        try await Task.sleep(for: .milliseconds(50))
                    }
                }
            }
            let terminator = Task { try await terminateTheSlowMigration() }
            let unretried = await #expect(throws: (any Error).self) { try await Self.runner(client, [slow]).run() }
            #expect(unretried.map { MigrationRunner.isTransient($0) } == true, "\(String(describing: unretried))")
            _ = try await terminator.value

            let again = Task { try await terminateTheSlowMigration() }
            #expect(try await Self.runner(client, [slow]).run(retryingFor: .seconds(60)) == [1])
            _ = try await again.value
            let broken = Migration(version: 2, name: "broken", sql: "CREATE TABLE items (id int);")
            await #expect(throws: MigrationError.self) { try await Self.runner(client, [slow, broken]).run(retryingFor: .seconds(30)) }
        }
    }

    @Test func secondRunAppliesNothing() async throws {
        try await TestDatabase.withFreshDatabase { client, _ in
            let result1 = try await Self.runner(client).run()
            #expect(result1 == [1, 2, 3])
            let result2 = try await Self.runner(client).run()
            #expect(result2 == [])
            let result3 = try await Self.itemIDs(client)
            #expect(result3 == [1, 2, 3])
        }
    }

    @Test func onlyPendingMigrationsRun() async throws {
        try await TestDatabase.withFreshDatabase { client, _ in
            let result4 = try await Self.runner(client, Array(Self.migrations.prefix(1))).run()
            #expect(result4 == [1])
            let result5 = try await Self.runner(client).run()
            #expect(result5 == [2, 3])
            let result6 = try await Self.itemIDs(client)
            #expect(result6 == [1, 2, 3])
        }
    }

    @Test func concurrentRunnersMigrateOnce() async throws {
        let url = try await PostgresCluster.shared.createDatabase()
        let results = try await withThrowingTaskGroup(of: [Int].self) { group in
            for _ in 0..<4 {
                group.addTask {
                    try await TestDatabase.withClient(url) { client in try await Self.runner(client).run() }
                }
            }
            return try await group.reduce(into: [[Int]]()) { $0.append($1) }
        }
        #expect(results.filter { $0 == [1, 2, 3] }.count == 1)
        #expect(results.filter { $0.isEmpty }.count == 3)
        try await TestDatabase.withClient(url) { client in
            let result7 = try await Self.itemIDs(client)
            #expect(result7 == [1, 2, 3])
        }
    }

    @Test func aFailingMigrationLeavesNothingBehind() async throws {
        try await TestDatabase.withFreshDatabase { client, _ in
            let broken = Self.migrations + [Migration(version: 4, name: "broken", sql: "INSERT INTO items VALUES (4, 'd'); SELECT nonsense FROM nowhere;")]
            await #expect(throws: MigrationError.self) { try await Self.runner(client, broken).run() }
            let count = try await client.query("SELECT count(*) FROM pg_tables WHERE tablename = 'items'").decode(Int.self)
                .reduce(0) { $0 + $1 }
            #expect(count == 0)
        }
    }

    @Test func aChangedMigrationIsRefused() async throws {
        try await TestDatabase.withFreshDatabase { client, _ in
            try await Self.runner(client).run()
            var edited = Self.migrations
            edited[1] = Migration(version: 2, name: "more", sql: "ALTER TABLE items ADD COLUMN other text;")
            await #expect(throws: MigrationError.self) { try await Self.runner(client, edited).run() }
        }
    }
}
