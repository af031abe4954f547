import HTTPKit
import Logging
import PostgresNIO

/// The import's own tables in the target database, created by the import itself (not by a
/// migration): `legacy_sync.sync_changes` keeps every original row verbatim (with the
/// columns our schema has no place for), `legacy_sync.import_state` the resume point,
/// `legacy_sync.import_ahead` how far the verbatim copy got when it commits on its own,
/// `legacy_sync.deferred_indexes` the indexes a first load dropped and builds after its rows,
/// and `legacy_sync.import_runs` one row per run with its report.
enum SyncImportSchema {
    static let statements: [String] = [
        "CREATE SCHEMA IF NOT EXISTS legacy_sync",
        """
        CREATE TABLE IF NOT EXISTS legacy_sync.sync_changes (
            id uuid PRIMARY KEY,
            app_id text NOT NULL,
            table_name text NOT NULL,
            record_id text NOT NULL,
            user_id text NOT NULL,
            op text NOT NULL,
            data jsonb,
            field_timestamps jsonb,
            client_id text NOT NULL,
            created_at timestamptz NOT NULL,
            space_id text,
            -- Read after rows later in (created_at, id) order were imported: it committed
            -- late in the original, and got the next cursor of its (user, app) instead.
            late boolean NOT NULL DEFAULT false
        )
        """,
        """
        CREATE TABLE IF NOT EXISTS legacy_sync.import_state (
            singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
            source text NOT NULL,
            last_created_at timestamptz,
            last_id uuid,
            cutover_cursor bigint NOT NULL DEFAULT 0,
            runs integer NOT NULL DEFAULT 0,
            updated_at timestamptz NOT NULL DEFAULT now()
        )
        """,
        """
        CREATE TABLE IF NOT EXISTS legacy_sync.import_ahead (
            singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
            last_created_at timestamptz NOT NULL,
            last_id uuid NOT NULL
        )
        """,
        """
        CREATE TABLE IF NOT EXISTS legacy_sync.deferred_indexes (
            table_name text NOT NULL,
            index_name text NOT NULL,
            -- What builds it again, from the catalog when it was dropped: the index, then
            -- (for a primary key or unique constraint) the constraint that adopts it.
            create_statement text NOT NULL,
            constraint_statement text,
            PRIMARY KEY (table_name, index_name)
        )
        """,
        ImportRuns.createSQL(schema: "legacy_sync"),
    ]

    /// Creates what is missing.
    static func create(on connection: PostgresConnection, logger: Logger) async throws {
        for statement in statements {
            try await connection.query(PostgresQuery(unsafeSQL: statement), logger: logger)
        }
    }
}
