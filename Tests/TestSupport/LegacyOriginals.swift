import HTTPKit
import PostgresNIO

/// Databases shaped exactly like the originals' (docs: ../shared/spec/legacy-schemas.md §1, §2),
/// for the import tests.
package enum LegacyOriginals {
    /// The Go mana-sync's table as its server creates it at start: unqualified, so in
    /// `public`, with its three indexes and forced row-level security.
    package static let syncDDL = [
        """
        CREATE TABLE IF NOT EXISTS sync_changes (
            id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
            app_id TEXT NOT NULL,
            table_name TEXT NOT NULL,
            record_id TEXT NOT NULL,
            user_id TEXT NOT NULL,
            op TEXT NOT NULL CHECK (op IN ('insert', 'update', 'delete')),
            data JSONB,
            field_timestamps JSONB DEFAULT '{}',
            client_id TEXT NOT NULL,
            created_at TIMESTAMPTZ NOT NULL DEFAULT NOW()
        )
        """,
        "CREATE INDEX IF NOT EXISTS idx_sync_changes_user_app ON sync_changes(user_id, app_id, created_at)",
        "CREATE INDEX IF NOT EXISTS idx_sync_changes_table_record ON sync_changes(table_name, record_id, created_at)",
        "CREATE INDEX IF NOT EXISTS idx_sync_changes_since ON sync_changes(user_id, app_id, table_name, created_at)",
        "ALTER TABLE sync_changes ENABLE ROW LEVEL SECURITY",
        "ALTER TABLE sync_changes FORCE ROW LEVEL SECURITY",
        """
        CREATE POLICY sync_changes_user_isolation ON sync_changes
            USING (user_id = current_setting('app.current_user_id', true))
            WITH CHECK (user_id = current_setting('app.current_user_id', true))
        """,
    ]

    /// A fresh database holding the original mana-sync table (empty).
    package static func syncDatabase() async throws -> DatabaseURL {
        let url = try await PostgresCluster.shared.createDatabase(prefix: "orig_sync")
        try await run(syncDDL, on: url)
        return url
    }

    /// Runs statements one by one on `url`.
    package static func run(_ statements: [String], on url: DatabaseURL) async throws {
        try await TestDatabase.withClient(url) { client in
            for statement in statements {
                do {
                    try await client.query(PostgresQuery(unsafeSQL: statement))
                } catch let error as PSQLError {
                    // PSQLError's description hides the server's message.
                    throw StatementFailed(statement: String(statement.prefix(200)), message: error.serverInfo?[.message] ?? "\(error.code)")
                }
            }
        }
    }

    package struct StatementFailed: Error {
        let statement: String
        let message: String
    }

    /// The URL as a command-line argument.
    package static func argument(_ url: DatabaseURL, user: String? = nil) -> String {
        "postgresql://\(user ?? url.username)@\(url.host):\(url.port)/\(url.database)?sslmode=disable"
    }
}
