import AsyncHTTPClient
import Foundation
import HTTPKit
import PostgresNIO
import Testing
import TestSupport

/// The real executables as separate processes.
@Suite(.heavy, .timeLimit(.minutes(15))) struct ServiceProcessTests {
    @Test(arguments: ["mana-sync", "mana-credits"])
    func aBadConfigurationStopsAtStartupNamingEveryVariable(executable: String) async throws {
        let process = try ChildProcess(
            executable, ["serve"], environment: ["PORT": "abc", "LOG_LEVEL": "loud", "DATABASE_URL": "mysql://x/y"])
        let status = try await process.waitForExit(timeout: .seconds(20))
        #expect(status == 78)
        for name in ["PORT", "LOG_LEVEL", "DATABASE_URL"] {
            #expect(process.output.contains(name), "\(name) not in: \(process.output)")
        }
    }

    /// A child that dies before it is ready ends the readiness wait at once (not after the
    /// wait's 60 s), so a failing restart explains itself instead of timing out in silence.
    @Test func theReadinessWaitEndsWhenTheChildExits() async throws {
        let process = try ChildProcess("mana-sync", ["serve"], environment: ["PORT": "abc"])
        let started = ContinuousClock.now
        #expect(await process.waitUntilReady(port: 1) == false)
        #expect(ContinuousClock.now - started < .seconds(30))
        #expect(process.exitStatus == 78)
    }

    @Test func productionRefusesTheDevelopmentServiceKey() async throws {
        let process = try ChildProcess(
            "mana-credits", ["serve"],
            environment: ["MANA_ENV": "production", "MANA_SERVICE_KEY": "dev-service-key", "DATABASE_URL": "postgresql://u:p@db/x"])
        #expect(try await process.waitForExit(timeout: .seconds(20)) == 78)
        #expect(process.output.contains("MANA_SERVICE_KEY"))
    }

    @Test func twoReplicasStartTogetherMigrateOnceAndStopOnSIGTERM() async throws {
        let database = try await PostgresCluster.shared.createDatabase(prefix: "replicas")
        let ports = [try FreePort.find(), try FreePort.find()]
        let replicas = try ports.map { port in
            try ChildProcess(
                "mana-credits", ["serve"],
                environment: [
                    "PORT": String(port), "HOST": "127.0.0.1", "LOG_LEVEL": "warning",
                    "DATABASE_URL": "postgresql://mana@127.0.0.1:\(database.port)/\(database.database)?sslmode=disable",
                ])
        }
        for (port, replica) in zip(ports, replicas) {
            #expect(await replica.waitUntilReady(port: port), "replica on \(port) never became ready")
        }
        let migrations = try await TestDatabase.withClient(database) { client in
            try await client.query("SELECT count(*) FROM schema_migrations").decode(Int.self).reduce(0, +)
        }
        #expect(migrations >= 2)
        let start = ContinuousClock.now
        replicas.forEach { $0.signal(SIGTERM) }
        for replica in replicas {
            let status = try await replica.waitForExit(timeout: .seconds(10))
            #expect(status == 0, "exit \(String(describing: status)): \(replica.output)")
        }
        #expect(ContinuousClock.now - start < .seconds(10))
    }
}
