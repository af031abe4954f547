-- Shared spaces, first part (docs/sync.md, "Shared spaces"): a change's space in its own
-- column. The push resolves it (the top-level `spaceId`, then `data.spaceId`, then
-- `fields.spaceId.value`; Change.spaceID) and sends it as `s`; a top-level `spaceId` that was
-- the space is served from the column.
ALTER TABLE sync.changes ADD COLUMN space_id text;

-- Rows stored before: the same resolution over what was kept (the top-level key is in extra).
-- Forced row-level security would show the migrating owner no rows: lifted for this statement,
-- inside the migration's transaction.
ALTER TABLE sync.changes NO FORCE ROW LEVEL SECURITY;
UPDATE sync.changes SET
    space_id = coalesce(
        nullif(CASE WHEN jsonb_typeof(extra->'spaceId') = 'string' THEN extra->>'spaceId' END, ''),
        nullif(CASE WHEN jsonb_typeof(data->'spaceId') = 'string' THEN data->>'spaceId' END, ''),
        nullif(CASE WHEN jsonb_typeof(fields->'spaceId'->'value') = 'string' THEN fields->'spaceId'->>'value' END, '')),
    extra = CASE WHEN jsonb_typeof(extra->'spaceId') = 'string' AND extra->>'spaceId' <> '' THEN nullif(extra - 'spaceId', '{}'::jsonb) ELSE extra END
WHERE extra ? 'spaceId' OR data ? 'spaceId' OR fields ? 'spaceId';
ALTER TABLE sync.changes FORCE ROW LEVEL SECURITY;

-- The extras as served: the space (when there is one) as `spaceId`, then the other kept keys.
CREATE FUNCTION sync.extra_out(p_space text, p_extra jsonb) RETURNS jsonb LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN p_space IS NULL THEN p_extra
        ELSE jsonb_build_object('spaceId', p_space) || coalesce(p_extra - 'spaceId', '{}'::jsonb) END
$$;

CREATE OR REPLACE FUNCTION sync.page_json(p_user text, p_app text, p_table text, p_since bigint, p_exclude text, p_limit int)
RETURNS TABLE (changes text, returned int, synced_until bigint, has_more boolean)
LANGUAGE sql STABLE AS $$
    WITH head AS (
        SELECT coalesce((SELECT last_cursor FROM sync.heads WHERE user_id = p_user AND app_id = p_app), 0) AS cursor
    ), candidates AS (
        SELECT cursor, table_name, record_id, op, data, fields, deleted_at, event_id, sync.extra_out(space_id, extra) AS extra FROM sync.changes
        WHERE user_id = p_user AND app_id = p_app AND cursor > p_since
            AND (p_table IS NULL OR table_name = p_table) AND (p_exclude IS NULL OR client_id <> p_exclude)
        ORDER BY cursor LIMIT p_limit + 1
    ), page AS (
        SELECT * FROM candidates ORDER BY cursor LIMIT p_limit
    ), counted AS (
        SELECT count(*) AS total FROM candidates
    )
    SELECT
        '[' || coalesce((
            SELECT string_agg(
                '{"table":' || to_json(table_name)::text || ',"id":' || to_json(record_id)::text || ',"op":"' || op || '"'
                    || CASE WHEN data IS NOT NULL THEN ',"data":' || data::text ELSE '' END
                    || CASE WHEN fields IS NOT NULL THEN ',"fields":' || fields::text ELSE '' END
                    || CASE WHEN deleted_at IS NOT NULL THEN ',"deletedAt":' || to_json(deleted_at)::text ELSE '' END
                    || CASE WHEN extra IS NOT NULL AND extra <> '{}'::jsonb
                            THEN ',' || substr(extra::text, 2, length(extra::text) - 2) ELSE '' END
                    || ',"eventId":"' || event_id::text || '"}',
                ',' ORDER BY cursor)
            FROM page), '') || ']',
        (SELECT count(*)::int FROM page),
        CASE WHEN (SELECT total FROM counted) > p_limit THEN (SELECT max(cursor) FROM page) ELSE (SELECT cursor FROM head) END,
        (SELECT total FROM counted) > p_limit
$$;

CREATE OR REPLACE FUNCTION sync.push(
    p_user text, p_app text, p_client text, p_key text, p_batch jsonb, p_count int, p_tables text[], p_since bigint, p_limit int
) RETURNS TABLE (stored int, changes text, returned int, synced_until bigint, has_more boolean)
LANGUAGE plpgsql AS $$
DECLARE
    v_base bigint;
    v_last bigint;
    v_notice text;
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
        GRANT EXECUTE ON FUNCTION sync.extra_out(text, jsonb) TO mana_sync_rls;
    END IF;
END
$$;
