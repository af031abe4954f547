import HTTPKit

/// Everything mana-credits reads from the environment.
struct CreditsConfiguration: Sendable {
    var chassis: ChassisSettings
    var serviceKeys: [String]

    static let serviceName = "mana-credits"

    /// Every variable mana-credits reads, for `--help` and the README.
    static var variables: [EnvironmentVariable] {
        ChassisSettings.variables(defaultPort: 3061, defaultDatabase: "mana_credits") + [
            Variables.serviceKey
        ]
    }

    enum Variables {
        static let serviceKey = EnvironmentVariable(
            "MANA_SERVICE_KEY", default: "dev-service-key",
            help: "service key(s) for internal calls, comma-separated for rotation; the first is sent to mana-sync",
            refusedInProduction: true)
    }

    init(chassis: ChassisSettings, serviceKeys: [String] = ["dev-service-key"]) {
        self.chassis = chassis
        self.serviceKeys = serviceKeys
    }

    init(reading reader: inout ConfigReader) {
        chassis = ChassisSettings(reading: &reader, serviceName: Self.serviceName, defaultPort: 3061, defaultDatabase: "mana_credits")
        serviceKeys = reader.list(Variables.serviceKey)
        if serviceKeys.isEmpty { reader.report("MANA_SERVICE_KEY: at least one key is required") }
    }
}
