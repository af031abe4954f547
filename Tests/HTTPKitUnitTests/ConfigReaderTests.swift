import HTTPKit
import Testing

@Suite struct ConfigReaderTests {
    static let variables = ChassisSettings.variables(defaultPort: 3050, defaultDatabase: "mana_sync")

    @Test func defaultsApplyWhenNothingIsSet() throws {
        var reader = ConfigReader(environment: [:])
        let settings = ChassisSettings(reading: &reader, serviceName: "s", defaultPort: 3050, defaultDatabase: "mana_sync")
        try reader.finish()
        #expect(settings.port == 3050)
        #expect(settings.database.database == "mana_sync")
        #expect(settings.database.username == "mana")
        #expect(settings.corsOrigins.isEmpty)
    }

    /// The pool keeps DATABASE_POOL_MINIMUM connections (4) open, never more than its size.
    @Test func thePoolMinimumIsReadAndNeverAboveThePoolSize() throws {
        func read(_ environment: [String: String]) throws -> (settings: Int, client: Int) {
            var reader = ConfigReader(environment: environment)
            let settings = ChassisSettings(reading: &reader, serviceName: "s", defaultPort: 3050, defaultDatabase: "mana_sync")
            try reader.finish()
            let client = settings.database.clientConfiguration(
                maximumConnections: settings.databasePoolSize, minimumConnections: settings.databasePoolMinimum)
            return (settings.databasePoolMinimum, client.options.minimumConnections)
        }
        #expect(try read([:]) == (4, 4))
        #expect(try read(["DATABASE_POOL_MINIMUM": "0"]) == (0, 0))
        #expect(try read(["DATABASE_POOL_MINIMUM": "9"]) == (9, 9))
        #expect(try read(["DATABASE_POOL_SIZE": "2"]) == (2, 2))
        var bad = ConfigReader(environment: ["DATABASE_POOL_MINIMUM": "-1"])
        _ = ChassisSettings(reading: &bad, serviceName: "s", defaultPort: 3050, defaultDatabase: "mana_sync")
        #expect(bad.problems.contains { $0.hasPrefix("DATABASE_POOL_MINIMUM") }, "\(bad.problems)")
        // Built in code (the tests' services): none kept.
        #expect(ChassisSettings(serviceName: "s", port: 1, database: try DatabaseURL("postgresql://u@h/d")).databasePoolMinimum == 0)
    }

    @Test func everyBadVariableIsReportedTogether() {
        var reader = ConfigReader(environment: [
            "PORT": "abc", "LOG_LEVEL": "loud", "DATABASE_URL": "mysql://x/y", "DATABASE_POOL_SIZE": "0",
        ])
        _ = ChassisSettings(reading: &reader, serviceName: "s", defaultPort: 3050, defaultDatabase: "mana_sync")
        let error = #expect(throws: ConfigurationError.self) { try reader.finish() }
        let message = error?.description ?? ""
        for name in ["PORT", "LOG_LEVEL", "DATABASE_URL", "DATABASE_POOL_SIZE"] {
            #expect(message.contains(name), "\(name) missing from: \(message)")
        }
        #expect(reader.problems.count == 4)
    }

    @Test func productionRefusesWeakDatabaseTLSAndAnyOriginWithCredentials() {
        let base = ["MANA_ENV": "production", "DATABASE_URL": "postgresql://mana@db/mana_sync?sslmode=require"]
        var weak = ConfigReader(environment: base.merging(["CORS_ORIGINS": "*"]) { $1 })
        _ = ChassisSettings(reading: &weak, serviceName: "s", defaultPort: 3050, defaultDatabase: "mana_sync")
        #expect(weak.problems.contains { $0.hasPrefix("DATABASE_URL") && $0.contains("verify-full") }, "\(weak.problems)")
        #expect(weak.problems.contains { $0.hasPrefix("CORS_ORIGINS") })
        var onPurpose = ConfigReader(environment: base.merging(["DATABASE_TLS_INSECURE": "1", "CORS_ORIGINS": "https://*.mana.how"]) { $1 })
        _ = ChassisSettings(reading: &onPurpose, serviceName: "s", defaultPort: 3050, defaultDatabase: "mana_sync")
        #expect(onPurpose.problems.isEmpty, "\(onPurpose.problems)")
        var verified = ConfigReader(environment: ["MANA_ENV": "production", "DATABASE_URL": "postgresql://mana@db/x?sslmode=verify-full"])
        _ = ChassisSettings(reading: &verified, serviceName: "s", defaultPort: 3050, defaultDatabase: "mana_sync")
        #expect(verified.problems.isEmpty, "\(verified.problems)")
    }

    @Test func productionRefusesDevelopmentDefaults() {
        let key = EnvironmentVariable("MANA_SERVICE_KEY", default: "dev-service-key", help: "", refusedInProduction: true)
        var unset = ConfigReader(environment: ["MANA_ENV": "production"])
        _ = unset.list(key)
        #expect(unset.problems.count == 1)
        var rotated = ConfigReader(environment: ["MANA_ENV": "production", "MANA_SERVICE_KEY": "real,dev-service-key"])
        _ = rotated.list(key)
        #expect(rotated.problems.count == 1)
        var real = ConfigReader(environment: ["MANA_ENV": "production", "MANA_SERVICE_KEY": "s3cret-key"])
        #expect(real.list(key) == ["s3cret-key"])
        #expect(real.problems.isEmpty)
        var development = ConfigReader(environment: [:])
        _ = development.list(key)
        #expect(development.problems.isEmpty)
    }

    @Test func productionRefusesTheDefaultDatabaseURL() {
        var reader = ConfigReader(environment: ["MANA_ENV": "production"])
        _ = ChassisSettings(reading: &reader, serviceName: "s", defaultPort: 3050, defaultDatabase: "mana_sync")
        #expect(reader.problems.contains { $0.hasPrefix("DATABASE_URL") })
    }

    @Test func typedReadersValidate() {
        let seconds = EnvironmentVariable("TIMEOUT", default: "2", help: "")
        var reader = ConfigReader(environment: ["TIMEOUT": "0.5"])
        #expect(reader.seconds(seconds, in: 0.1...10) == .milliseconds(500))
        var bad = ConfigReader(environment: ["TIMEOUT": "soon"])
        _ = bad.seconds(seconds, in: 0.1...10)
        #expect(bad.problems.first?.contains("TIMEOUT") == true)
        let url = EnvironmentVariable("UPSTREAM", default: "http://localhost:3061/", help: "")
        var urls = ConfigReader(environment: [:])
        #expect(urls.url(url) == "http://localhost:3061")
        var badURL = ConfigReader(environment: ["UPSTREAM": "localhost:3061"])
        _ = badURL.url(url)
        #expect(badURL.problems.count == 1)
    }

    @Test func durationsReadAsOperatorsWriteThem() {
        let cases: [(String, Duration?)] = [
            ("7d", .seconds(604_800)), ("12h", .seconds(43_200)), ("30m", .seconds(1_800)), ("45s", .seconds(45)),
            ("250ms", .milliseconds(250)), ("90", .seconds(90)), ("1.5", .milliseconds(1_500)), (" 2H ", .seconds(7_200)),
            ("0", .zero), ("", nil), ("d", nil), ("-1h", nil), ("1w", nil), ("soon", nil), ("1e3", nil),
        ]
        for (text, expected) in cases { #expect(DurationText.parse(text) == expected, "\(text)") }
        let after = EnvironmentVariable("AFTER", default: "7d", help: "")
        var reader = ConfigReader(environment: [:])
        #expect(reader.duration(after, in: .zero...Duration.seconds(86_400 * 365)) == .seconds(604_800))
        var outside = ConfigReader(environment: ["AFTER": "400d"])
        _ = outside.duration(after, in: .zero...Duration.seconds(86_400 * 365))
        #expect(outside.problems.first?.contains("AFTER") == true)
        var bad = ConfigReader(environment: ["AFTER": "weekly"])
        _ = bad.duration(after, in: .zero...Duration.seconds(86_400 * 365))
        #expect(bad.problems.first?.contains("not a duration") == true)
    }

    @Test func helpTextNamesEveryVariableAndDefault() {
        let text = EnvironmentVariable.helpText(Self.variables)
        for variable in Self.variables {
            #expect(text.contains(variable.name))
        }
        #expect(text.contains("3050"))
    }
}

@Suite struct DatabaseURLTests {
    @Test func parsesEveryPart() throws {
        let url = try DatabaseURL("postgres://user:p%40ss@db.internal:6543/mana_credits?sslmode=require")
        #expect(url.host == "db.internal")
        #expect(url.port == 6543)
        #expect(url.username == "user")
        #expect(url.password == "p@ss")
        #expect(url.database == "mana_credits")
        #expect(url.sslMode == "require")
        #expect(!url.redacted.contains("p@ss"))
    }

    @Test func defaultsPortAndSSLMode() throws {
        let url = try DatabaseURL("postgresql://mana@localhost/mana_sync")
        #expect(url.port == 5432)
        #expect(url.sslMode == "prefer")
        #expect(url.password == nil)
    }

    @Test(arguments: [
        "mysql://u@h/d", "postgres://h/d", "postgres://u@/d", "postgres://u@h", "postgres://u@h/d?sslmode=maybe",
        "not a url",
    ])
    func rejectsBadURLsWithoutEchoingPasswords(text: String) {
        #expect(throws: DatabaseURLError.self) { try DatabaseURL(text) }
    }

    @Test func errorNeverContainsThePassword() {
        do {
            _ = try DatabaseURL("postgres://u:supersecret@h/d?sslmode=bogus")
            Issue.record("expected an error")
        } catch {
            #expect(!"\(error)".contains("supersecret"))
        }
    }
}
