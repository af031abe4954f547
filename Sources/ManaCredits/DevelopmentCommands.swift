import ArgumentParser
import Foundation
import SharedAuth

extension ManaCreditsCommand {
    /// `mana-credits dev-keys --dir .local/auth`: a development signing key and its JWKS file.
    struct DevKeys: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "dev-keys",
            abstract: "Create a development Ed25519 signing key and JWKS file (kept if they exist).",
            discussion: "Point both services at the JWKS with JWKS_URL=file://<dir>/jwks.json. Never use in production.")

        @Option(help: "Folder for signing-key.json and jwks.json.") var dir: String

        func run() async throws {
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            let keyPath = dir + "/signing-key.json"
            let key: DevelopmentSigningKey
            if FileManager.default.fileExists(atPath: keyPath) {
                key = try DevelopmentSigningKey(contentsOf: keyPath)
            } else {
                key = try DevelopmentSigningKey()
                try key.save(to: keyPath)
            }
            try key.jwksDocument().write(to: URL(fileURLWithPath: dir + "/jwks.json"))
            print(URL(fileURLWithPath: dir + "/jwks.json").absoluteString)
        }
    }

    /// `mana-credits dev-token --key .local/auth/signing-key.json --user alice --role admin`.
    struct DevToken: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "dev-token", abstract: "Mint a token with a development signing key (see dev-keys).")

        @Option(help: "The signing-key.json written by dev-keys.") var key: String
        @Option(help: "User id (the sub claim).") var user: String
        @Option(help: "Role claim.") var role: String = "user"
        @Option(help: "Email claim.") var email: String?
        @Option(help: "Issuer claim (mana-credits expects MANA_AUTH_URL).") var issuer: String = "http://localhost:3001"
        @Option(help: "Audience claim.") var audience: String = "mana"
        @Option(help: "Lifetime in hours.") var hours: Int = 24

        func run() async throws {
            let signingKey = try DevelopmentSigningKey(contentsOf: key)
            print(
                try await signingKey.mint(
                    userID: user, email: email ?? "\(user)@example.com", role: role, issuer: issuer, audience: audience,
                    lifetime: .seconds(hours * 3600)))
        }
    }
}
