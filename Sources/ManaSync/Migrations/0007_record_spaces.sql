-- Shared spaces, second part: a record cannot move between spaces (409). The first space a
-- record (app, table, id) is written into, by anyone, is kept here; `_personal:` sentinels
-- are not spaces in this sense (the web client rewrites them to the personal space later).
CREATE TABLE sync.record_spaces (
    app_id text NOT NULL,
    table_name text NOT NULL,
    record_id text NOT NULL,
    space_id text NOT NULL,
    PRIMARY KEY (app_id, table_name, record_id)
);

CREATE OR REPLACE FUNCTION sync.push(
    p_user text, p_app text, p_client text, p_key text, p_batch jsonb, p_count int, p_tables text[], p_since bigint, p_limit int
) RETURNS TABLE (stored int, changes text, returned int, synced_until bigint, has_more boolean)
LANGUAGE plpgsql AS $$
DECLARE
    v_base bigint;
    v_last bigint;
    v_notice text;
    v_moved bigint;
    v_recorded text;
BEGIN
    PERFORM sync.enter_user(p_user);
    stored := 0;
    IF p_key IS NOT NULL THEN
        INSERT INTO sync.push_receipts (user_id, app_id, client_id, idempotency_key)
        VALUES (p_user, p_app, p_client, p_key) ON CONFLICT DO NOTHING;
        IF NOT FOUND THEN
            p_count := 0;  -- a retry: stored the first time
        END IF;
    END IF;
    IF p_count > 0 THEN
        -- A record stays in the first space it was written into: its first space is recorded
        -- (the first change of the batch decides for a new record), then any change naming
        -- another space fails the whole push.
        INSERT INTO sync.record_spaces (app_id, table_name, record_id, space_id)
        SELECT DISTINCT ON (e.value->>'table', e.value->>'id') p_app, e.value->>'table', e.value->>'id', e.value->>'s'
        FROM jsonb_array_elements(p_batch) WITH ORDINALITY AS e
        WHERE e.value->>'s' IS NOT NULL AND e.value->>'s' NOT LIKE '\_personal:%'
        ORDER BY e.value->>'table', e.value->>'id', e.ordinality
        ON CONFLICT DO NOTHING;
        SELECT min(e.ordinality), (array_agg(r.space_id ORDER BY e.ordinality))[1] INTO v_moved, v_recorded
        FROM jsonb_array_elements(p_batch) WITH ORDINALITY AS e
        JOIN sync.record_spaces r ON r.app_id = p_app AND r.table_name = e.value->>'table' AND r.record_id = e.value->>'id'
        WHERE e.value->>'s' IS NOT NULL AND e.value->>'s' NOT LIKE '\_personal:%' AND r.space_id <> e.value->>'s';
        IF v_moved IS NOT NULL THEN
            RAISE EXCEPTION USING ERRCODE = 'MS409', MESSAGE = (v_moved - 1)::text, DETAIL = v_recorded;
        END IF;
        INSERT INTO sync.heads (user_id, app_id) VALUES (p_user, p_app) ON CONFLICT DO NOTHING;
        SELECT greatest((extract(epoch FROM clock_timestamp()) * 1000000)::bigint, last_cursor + 1) INTO v_base
        FROM sync.heads WHERE user_id = p_user AND app_id = p_app FOR UPDATE;
        INSERT INTO sync.changes (user_id, app_id, cursor, table_name, record_id, op, data, fields, deleted_at, client_id, extra, space_id)
        SELECT p_user, p_app, v_base + e.ordinality - 1, e.value->>'table', e.value->>'id', e.value->>'op',
            e.value->'data', e.value->'fields', e.value->>'deletedAt', p_client, e.value->'x', e.value->>'s'
        FROM jsonb_array_elements(p_batch) WITH ORDINALITY AS e;
        v_last := v_base + p_count - 1;
        UPDATE sync.heads SET last_cursor = v_last WHERE user_id = p_user AND app_id = p_app;
        -- Delivered to every replica's listener when (and only if) this transaction commits;
        -- the table list is left out when the notice would be too long for NOTIFY.
        v_notice := json_build_object('a', p_app, 'c', p_client, 'f', v_base::text, 'k', 'push', 'l', v_last::text,
            't', p_tables, 'u', p_user)::text;
        IF octet_length(v_notice) > 7000 THEN
            v_notice := json_build_object('a', p_app, 'c', p_client, 'f', v_base::text, 'k', 'push', 'l', v_last::text,
                't', NULL, 'u', p_user)::text;
        END IF;
        PERFORM pg_notify('mana_sync_events', v_notice);
        stored := p_count;
    END IF;
    SELECT p.changes, p.returned, p.synced_until, p.has_more INTO changes, returned, synced_until, has_more
    FROM sync.page_json(p_user, p_app, NULL, p_since, p_client, p_limit) AS p;
    RETURN NEXT;
END
$$;

DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'mana_sync_rls') THEN
        GRANT SELECT, INSERT ON sync.record_spaces TO mana_sync_rls;
    END IF;
END
$$;
