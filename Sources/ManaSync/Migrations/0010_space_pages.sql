-- Shared spaces, fifth part: a member's page with a backfill, and each space's rows read
-- through an index in cursor order (benchmark "sync pull of a space member",
-- docs/benchmarks.md): migration 0008's `space_id = ANY(p_spaces)` neither matched the
-- partial index's predicate nor gave rows in cursor order, so every page scanned the table
-- (237 ms for 1,000 rows of a 200,000-row space). Now each space is one ordered index scan
-- (by table for a pull, across tables for a push answer), merged.
CREATE INDEX changes_by_space_cursor ON sync.changes (space_id, app_id, cursor)
    WHERE space_id IS NOT NULL AND space_id NOT LIKE '\_personal:%';

-- The rows of p_spaces in (p_after, p_until] of one table (all tables for a NULL p_table),
-- the first p_limit of each space in cursor order; p_user's own rows among them leave out its
-- client p_exclude, as the own rows do.
CREATE FUNCTION sync.space_rows(
    p_spaces text[], p_app text, p_table text, p_user text, p_exclude text, p_after bigint, p_until bigint, p_limit int
) RETURNS SETOF sync.changes LANGUAGE sql STABLE AS $$
    SELECT r.* FROM unnest(p_spaces) AS sp(id), LATERAL (
        SELECT * FROM sync.changes c
        WHERE c.space_id = sp.id AND c.space_id NOT LIKE '\_personal:%' AND c.app_id = p_app AND c.table_name = p_table
            AND c.cursor > p_after AND c.cursor <= p_until AND (p_exclude IS NULL OR c.user_id <> p_user OR c.client_id <> p_exclude)
        ORDER BY c.cursor LIMIT p_limit) r
    WHERE p_table IS NOT NULL
    UNION ALL
    SELECT r.* FROM unnest(p_spaces) AS sp(id), LATERAL (
        SELECT * FROM sync.changes c
        WHERE c.space_id = sp.id AND c.space_id NOT LIKE '\_personal:%' AND c.app_id = p_app
            AND c.cursor > p_after AND c.cursor <= p_until AND (p_exclude IS NULL OR c.user_id <> p_user OR c.client_id <> p_exclude)
        ORDER BY c.cursor LIMIT p_limit) r
    WHERE p_table IS NULL
$$;

-- One page of a member's changes (the seven-argument form of migration 0008), with a
-- backfill (migration 0009): the rows of p_backfill after p_since, everything else after
-- greatest(p_since, p_high); p_spaces and p_backfill do not overlap. The spaces' rows come
-- through sync.space_rows. The caller's own rows in its spaces come from both reads (neither
-- filters the other's out, which would make it step over them one by one); a row is taken
-- once, by (cursor, user).
CREATE FUNCTION sync.page_json_spaces(
    p_user text, p_app text, p_table text, p_since bigint, p_exclude text, p_limit int, p_spaces text[],
    p_backfill text[], p_high bigint
) RETURNS TABLE (changes text, returned int, synced_until bigint, has_more boolean)
LANGUAGE sql STABLE AS $$
    WITH heads AS (
        SELECT last_cursor FROM sync.heads WHERE user_id = p_user AND app_id = p_app
        UNION ALL SELECT last_cursor FROM sync.space_heads WHERE app_id = p_app AND space_id = ANY(p_spaces || p_backfill)
    ), head AS (
        SELECT CASE WHEN coalesce(max(last_cursor), 0) = 0 THEN 0
            ELSE min(greatest(last_cursor, (extract(epoch FROM clock_timestamp()) * 1000000)::bigint)) END AS cursor
        FROM heads
    ), candidates AS (
        SELECT DISTINCT ON (cursor, user_id) * FROM (
            (SELECT cursor, user_id, table_name, record_id, op, data, fields, deleted_at, event_id, space_id, extra
             FROM sync.changes
             WHERE user_id = p_user AND app_id = p_app AND cursor > greatest(p_since, p_high)
                 AND (p_table IS NULL OR table_name = p_table) AND (p_exclude IS NULL OR client_id <> p_exclude)
             ORDER BY cursor LIMIT p_limit + 1)
            UNION ALL
            (SELECT cursor, user_id, table_name, record_id, op, data, fields, deleted_at, event_id, space_id, extra
             FROM sync.space_rows(p_spaces, p_app, p_table, p_user, p_exclude, greatest(p_since, p_high), 9223372036854775807, p_limit + 1)
             ORDER BY cursor LIMIT p_limit + 1)
            UNION ALL
            (SELECT cursor, user_id, table_name, record_id, op, data, fields, deleted_at, event_id, space_id, extra
             FROM sync.space_rows(p_backfill, p_app, p_table, p_user, p_exclude, p_since, 9223372036854775807, p_limit + 1)
             ORDER BY cursor LIMIT p_limit + 1)
        ) all_kinds ORDER BY cursor, user_id LIMIT p_limit + 1
    ), boundary AS (
        -- The cursor of the first row left out, when there is one.
        SELECT (SELECT cursor FROM candidates ORDER BY cursor OFFSET p_limit LIMIT 1) AS at
    ), lone_cursor AS (
        -- Every candidate shares the boundary's cursor: the page takes all rows of it.
        SELECT b.at FROM boundary b WHERE b.at IS NOT NULL AND NOT EXISTS (SELECT 1 FROM candidates c WHERE c.cursor < b.at)
    ), page AS (
        SELECT c.* FROM candidates c, boundary b WHERE b.at IS NULL OR c.cursor < b.at
        UNION ALL
        SELECT DISTINCT ON (cursor, user_id) * FROM (
            SELECT s.cursor, s.user_id, s.table_name, s.record_id, s.op, s.data, s.fields, s.deleted_at, s.event_id, s.space_id, s.extra
            FROM lone_cursor l, sync.changes s
            WHERE s.user_id = p_user AND s.app_id = p_app AND s.cursor = l.at AND l.at > p_high
                AND (p_table IS NULL OR s.table_name = p_table) AND (p_exclude IS NULL OR s.client_id <> p_exclude)
            UNION ALL
            SELECT s.cursor, s.user_id, s.table_name, s.record_id, s.op, s.data, s.fields, s.deleted_at, s.event_id, s.space_id, s.extra
            FROM lone_cursor l, LATERAL sync.space_rows(p_spaces, p_app, p_table, p_user, p_exclude, l.at - 1, l.at, 2147483647) s
            WHERE l.at > p_high
            UNION ALL
            SELECT s.cursor, s.user_id, s.table_name, s.record_id, s.op, s.data, s.fields, s.deleted_at, s.event_id, s.space_id, s.extra
            FROM lone_cursor l, LATERAL sync.space_rows(p_backfill, p_app, p_table, p_user, p_exclude, l.at - 1, l.at, 2147483647) s
        ) same_cursor ORDER BY cursor, user_id
    )
    SELECT
        '[' || coalesce((
            SELECT string_agg(sync.change_json(table_name, record_id, op, data, fields, deleted_at, sync.extra_out(space_id, extra), event_id),
                ',' ORDER BY cursor, event_id)
            FROM page), '') || ']',
        (SELECT count(*)::int FROM page),
        CASE WHEN (SELECT at FROM boundary) IS NULL THEN (SELECT cursor FROM head)
            WHEN EXISTS (SELECT 1 FROM candidates c, boundary b WHERE c.cursor < b.at) THEN (SELECT at - 1 FROM boundary)
            ELSE (SELECT at FROM boundary) END,
        (SELECT at FROM boundary) IS NOT NULL
$$;

-- Without a backfill (push answers): the same page.
CREATE OR REPLACE FUNCTION sync.page_json_spaces(
    p_user text, p_app text, p_table text, p_since bigint, p_exclude text, p_limit int, p_spaces text[]
) RETURNS TABLE (changes text, returned int, synced_until bigint, has_more boolean)
LANGUAGE sql STABLE AS $$
    SELECT * FROM sync.page_json_spaces(p_user, p_app, p_table, p_since, p_exclude, p_limit, p_spaces, '{}'::text[], 0::bigint)
$$;

DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'mana_sync_rls') THEN
        GRANT EXECUTE ON FUNCTION sync.space_rows(text[], text, text, text, text, bigint, bigint, int),
            sync.page_json_spaces(text, text, text, bigint, text, int, text[], text[], bigint) TO mana_sync_rls;
    END IF;
END
$$;
