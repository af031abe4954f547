-- Shared spaces, first part (docs/sync.md, "Shared spaces"): a change's space in its own
-- column. The push resolves it (the top-level `spaceId`, then `data.spaceId`, then
-- `fields.spaceId.value`; Change.spaceID) and sends it as `s` (stored by the push of migration
-- 0008); a top-level `spaceId` that was the space is served from the column.
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
-- STABLE, not IMMUTABLE (jsonb_build_object and to_json are STABLE): only then does PostgreSQL
-- inline these into the page queries; called as functions they made a 1,000-change page 3×
-- slower.
CREATE FUNCTION sync.extra_out(p_space text, p_extra jsonb) RETURNS jsonb LANGUAGE sql STABLE AS $$
    SELECT CASE WHEN p_space IS NULL THEN p_extra
        ELSE jsonb_build_object('spaceId', p_space) || coalesce(p_extra - 'spaceId', '{}'::jsonb) END
$$;

-- One change as served: in the shape it came in, extras spliced in, eventId last.
CREATE FUNCTION sync.change_json(
    p_table text, p_id text, p_op text, p_data jsonb, p_fields jsonb, p_deleted_at text, p_extra jsonb, p_event uuid
) RETURNS text LANGUAGE sql STABLE AS $$
    SELECT '{"table":' || to_json(p_table)::text || ',"id":' || to_json(p_id)::text || ',"op":"' || p_op || '"'
        || CASE WHEN p_data IS NOT NULL THEN ',"data":' || p_data::text ELSE '' END
        || CASE WHEN p_fields IS NOT NULL THEN ',"fields":' || p_fields::text ELSE '' END
        || CASE WHEN p_deleted_at IS NOT NULL THEN ',"deletedAt":' || to_json(p_deleted_at)::text ELSE '' END
        || CASE WHEN p_extra IS NOT NULL AND p_extra <> '{}'::jsonb
                THEN ',' || substr(p_extra::text, 2, length(p_extra::text) - 2) ELSE '' END
        || ',"eventId":"' || p_event::text || '"}'
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
            SELECT string_agg(sync.change_json(table_name, record_id, op, data, fields, deleted_at, extra, event_id),
                ',' ORDER BY cursor)
            FROM page), '') || ']',
        (SELECT count(*)::int FROM page),
        CASE WHEN (SELECT total FROM counted) > p_limit THEN (SELECT max(cursor) FROM page) ELSE (SELECT cursor FROM head) END,
        (SELECT total FROM counted) > p_limit
$$;

DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'mana_sync_rls') THEN
        GRANT EXECUTE ON FUNCTION sync.extra_out(text, jsonb), sync.change_json(text, text, text, jsonb, jsonb, text, jsonb, uuid)
            TO mana_sync_rls;
    END IF;
END
$$;
