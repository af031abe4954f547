import HTTPKit

/// Everything mana-sync reads from the environment.
struct SyncConfiguration: Sendable {
    var chassis: ChassisSettings
    var serviceKeys: [String]

    static let serviceName = "mana-sync"

    /// Every variable mana-sync reads, for `--help` and the README.
    static var variables: [EnvironmentVariable] {
        ChassisSettings.variables(defaultPort: 3050, defaultDatabase: "mana_sync") + [
            Variables.serviceKey
        ]
    }

    enum Variables {
        static let serviceKey = EnvironmentVariable(
            "MANA_SERVICE_KEY", default: "dev-service-key",
            help: "service key(s) for internal calls, comma-separated for rotation; the first is sent to mana-credits",
            refusedInProduction: true)
    }

    init(chassis: ChassisSettings, serviceKeys: [String] = ["dev-service-key"]) {
        self.chassis = chassis
        self.serviceKeys = serviceKeys
    }

    init(reading reader: inout ConfigReader) {
        chassis = ChassisSettings(reading: &reader, serviceName: Self.serviceName, defaultPort: 3050, defaultDatabase: "mana_sync")
        serviceKeys = reader.list(Variables.serviceKey)
        if serviceKeys.isEmpty { reader.report("MANA_SERVICE_KEY: at least one key is required") }
    }
}
