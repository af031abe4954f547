-- The change log: every pushed change, with a server cursor (microseconds since the epoch)
-- that is unique and strictly increasing per (user, app) in commit order. Writers of one
-- (user, app) serialise on its head row, which holds the last cursor handed out.
CREATE TABLE sync.heads (
    user_id text NOT NULL,
    app_id text NOT NULL,
    last_cursor bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (user_id, app_id)
);

CREATE TABLE sync.changes (
    user_id text NOT NULL,
    app_id text NOT NULL,
    cursor bigint NOT NULL,
    table_name text NOT NULL,
    record_id text NOT NULL,
    op text NOT NULL CHECK (op IN ('insert', 'update', 'delete')),
    data jsonb,
    fields jsonb,
    deleted_at text,
    client_id text NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, app_id, cursor)
);
CREATE INDEX changes_by_table ON sync.changes (user_id, app_id, table_name, cursor);

-- Idempotency-Key receipts: a retried push with a stored key stores nothing again.
CREATE TABLE sync.push_receipts (
    user_id text NOT NULL,
    app_id text NOT NULL,
    client_id text NOT NULL,
    idempotency_key text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, app_id, client_id, idempotency_key)
);

-- Row-level security, forced, keyed on the per-transaction setting mana.user_id: a query
-- that forgot its user_id filter still sees only that user's rows.
ALTER TABLE sync.heads ENABLE ROW LEVEL SECURITY;
ALTER TABLE sync.heads FORCE ROW LEVEL SECURITY;
CREATE POLICY user_rows ON sync.heads
    USING (user_id = current_setting('mana.user_id', true)) WITH CHECK (user_id = current_setting('mana.user_id', true));
ALTER TABLE sync.changes ENABLE ROW LEVEL SECURITY;
ALTER TABLE sync.changes FORCE ROW LEVEL SECURITY;
CREATE POLICY user_rows ON sync.changes
    USING (user_id = current_setting('mana.user_id', true)) WITH CHECK (user_id = current_setting('mana.user_id', true));
ALTER TABLE sync.push_receipts ENABLE ROW LEVEL SECURITY;
ALTER TABLE sync.push_receipts FORCE ROW LEVEL SECURITY;
CREATE POLICY user_rows ON sync.push_receipts
    USING (user_id = current_setting('mana.user_id', true)) WITH CHECK (user_id = current_setting('mana.user_id', true));

-- Superusers and BYPASSRLS roles skip every policy. Where the migrating user may create
-- roles, a role without that power is made; the service switches to it in each transaction.
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'mana_sync_rls') THEN
        IF (SELECT rolsuper OR rolcreaterole FROM pg_roles WHERE rolname = current_user) THEN
            BEGIN
                CREATE ROLE mana_sync_rls NOLOGIN NOBYPASSRLS;
            EXCEPTION WHEN duplicate_object OR unique_violation THEN
                NULL;  -- another database's migration created it at the same moment
            END;
        END IF;
    END IF;
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'mana_sync_rls') THEN
        IF NOT pg_has_role(current_user, 'mana_sync_rls', 'MEMBER') THEN
            EXECUTE format('GRANT mana_sync_rls TO %I', current_user);
        END IF;
        GRANT USAGE ON SCHEMA sync TO mana_sync_rls;
        GRANT SELECT, INSERT, UPDATE ON sync.heads, sync.changes, sync.push_receipts TO mana_sync_rls;
    END IF;
END
$$;
