-- A page of a user's own changes (migration 0012's, same results) without the window
-- function: the page is the first p_limit rows in cursor order, and whether more remain is
-- one index probe past its last cursor (an ordered `LIMIT 1`, which any plan answers from the
-- index; an EXISTS could be planned as a sequential scan expecting an early match), made only
-- when the page is full, in the same snapshot. Numbering 1,001 rows with row_number() and
-- filtering every aggregate cost a quarter of the page: pgbench, a page of 1,000 of one busy
-- user (400,000 rows, five apps, three tables), 2 clients: 978 → 1,237 pages/s for one table,
-- 990 → 1,194/s for a push answer (all tables, one client left out); docs/benchmarks.md,
-- session 35.
CREATE OR REPLACE FUNCTION sync.page_json(p_user text, p_app text, p_table text, p_since bigint, p_exclude text, p_limit int)
RETURNS TABLE (changes text, returned int, synced_until bigint, has_more boolean)
LANGUAGE sql STABLE AS $$
    SELECT page.changes, page.returned,
        CASE WHEN page.has_more THEN page.last
            ELSE coalesce((SELECT last_cursor FROM sync.heads WHERE user_id = p_user AND app_id = p_app), 0) END,
        page.has_more
    FROM (
        SELECT '[' || coalesce(string_agg(p.json, ',' ORDER BY p.cursor), '') || ']' AS changes,
            count(*)::int AS returned,
            max(p.cursor) AS last,
            CASE WHEN count(*) < p_limit THEN false ELSE (
                SELECT c.cursor FROM sync.changes c
                WHERE c.user_id = p_user AND c.app_id = p_app AND c.cursor > max(p.cursor)
                    AND (p_table IS NULL OR c.table_name = p_table) AND (p_exclude IS NULL OR c.client_id <> p_exclude)
                ORDER BY c.cursor LIMIT 1) IS NOT NULL END AS has_more
        FROM (
            SELECT c.cursor, coalesce(c.served, sync.change_json(c.table_name, c.record_id, c.op, c.data, c.fields, c.deleted_at,
                sync.extra_out(c.space_id, c.extra), c.event_id)) AS json
            FROM sync.changes c
            WHERE c.user_id = p_user AND c.app_id = p_app AND c.cursor > p_since
                AND (p_table IS NULL OR c.table_name = p_table) AND (p_exclude IS NULL OR c.client_id <> p_exclude)
            ORDER BY c.cursor LIMIT p_limit
        ) p
    ) page
$$;

-- A push plans its statements once per connection. PostgreSQL plans a PL/pgSQL function's
-- statements with the call's values ("custom plans") until it trusts a generic plan, and for
-- the push it never did: every call parsed the inlined page and change_json bodies again and
-- planned every statement anew (perf: base_yyparse, copyObject and expression walkers on top of
-- PostgreSQL's profile). The push's statements read by key (the heads, the receipt, the record
-- spaces) and by (user, app, cursor) range, which a generic plan serves with the same indexes;
-- the answer page names no table. pgbench, the function alone, one change, 32 clients:
-- 1,579 → 3,244 calls a second (the least SQL: 3,265-3,890 on the same cluster).
ALTER FUNCTION sync.push_spaces(text, text, text, text, jsonb, int, text[], bigint, int, text[], text[])
    SET plan_cache_mode = force_generic_plan;
