import HTTPKit
import Logging
import PostgresNIO

/// The import's own tables in the target, created by the import itself (not by a migration):
/// `legacy_credits.<table>` keeps every original row verbatim (with `row_hash`, what a later
/// run compares), `legacy_credits.users` each user's state (imported or held back, and the
/// digest of their original rows), `import_state` and `import_runs` the runs.
enum CreditsImportSchema {
    static var statements: [String] {
        ["CREATE SCHEMA IF NOT EXISTS legacy_credits"]
            + CreditsImportMapping.tables.map { table in
                let columns = table.columns.map { "\($0.name) \($0.type)\($0.name == table.key ? " PRIMARY KEY" : "")" }
                return "CREATE TABLE IF NOT EXISTS \(table.legacy) (\((columns + ["row_hash bigint NOT NULL"]).joined(separator: ", ")))"
            } + [
                """
                CREATE TABLE IF NOT EXISTS legacy_credits.users (
                    user_id text PRIMARY KEY,
                    -- 'imported': everything of the user that has a place is in ours; 'held': nothing
                    -- (or nothing since the last import of the user), see reason.
                    state text NOT NULL CHECK (state IN ('imported', 'held')),
                    reason text,
                    -- Count and hash sum of the user's original rows when last read.
                    digest text NOT NULL,
                    adjusted boolean NOT NULL DEFAULT false,
                    updated_at timestamptz NOT NULL DEFAULT now()
                )
                """,
                """
                CREATE TABLE IF NOT EXISTS legacy_credits.import_state (
                    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
                    source text NOT NULL,
                    runs integer NOT NULL DEFAULT 0,
                    updated_at timestamptz NOT NULL DEFAULT now()
                )
                """,
                ImportRuns.createSQL(schema: "legacy_credits"),
            ]
    }

    /// The session's batch tables: the staged original rows, the batch's users and their
    /// decision, the ledger rows to place in chain order, and the reviewed adjustments.
    static var stagingStatements: [String] {
        CreditsImportMapping.tables.map { "CREATE TEMP TABLE IF NOT EXISTS \($0.stage) (LIKE \($0.legacy))" } + [
            "CREATE TEMP TABLE IF NOT EXISTS stage_users (user_id text PRIMARY KEY, decision text NOT NULL, reason text, digest text NOT NULL, adjusted boolean NOT NULL)",
            "CREATE TEMP TABLE IF NOT EXISTS stage_chain (id uuid PRIMARY KEY, pos integer NOT NULL)",
            """
            CREATE TEMP TABLE IF NOT EXISTS stage_adjustments (
                user_id text, system_key text, amount bigint, balance_before bigint, balance_after bigint, description text,
                metadata jsonb, created_at timestamptz, pos integer)
            """,
        ]
    }

    static var stagingTables: [String] {
        CreditsImportMapping.tables.map(\.stage) + ["stage_users", "stage_chain", "stage_adjustments"]
    }

    /// Creates what is missing.
    static func create(on connection: PostgresConnection, logger: Logger) async throws {
        for statement in statements + stagingStatements {
            try await connection.query(PostgresQuery(unsafeSQL: statement), logger: logger)
        }
    }
}
