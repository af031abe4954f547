-- Shared spaces, second part: a record cannot move between spaces (409; checked by the push
-- of migration 0008). The first space a record (app, table, id) is written into, by anyone,
-- is kept here; `_personal:` sentinels
-- are not spaces in this sense (the web client rewrites them to the personal space later).
CREATE TABLE sync.record_spaces (
    app_id text NOT NULL,
    table_name text NOT NULL,
    record_id text NOT NULL,
    space_id text NOT NULL,
    PRIMARY KEY (app_id, table_name, record_id)
);

DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'mana_sync_rls') THEN
        GRANT SELECT, INSERT ON sync.record_spaces TO mana_sync_rls;
    END IF;
END
$$;
