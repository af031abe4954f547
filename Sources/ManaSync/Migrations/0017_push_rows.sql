-- Pushes of own rows as columns (issue 19; docs/benchmarks.md, session 40).
-- sync.push_batch (migration 0016) took each push's changes as one JSON document: PostgreSQL
-- parsed all of it to jsonb, took each change apart (`->>` per key), gathered ten arrays with
-- `array_agg … ORDER BY`, and built each change's served text from the jsonb (`jsonb` to text,
-- a dozen concatenations). The service had parsed and validated the same changes already. Here
-- it sends them as one text array per column, and PostgreSQL only casts the JSON values (data,
-- fields, extras) to jsonb and stores the rows. pgbench, batches of ten 100-change pushes at 2
-- clients, three interleaved rounds (literal arrays, which PostgreSQL parses more slowly than
-- the binary arrays the service binds): 81,000-104,000 changes a second through
-- sync.push_batch, 110,000-125,000 through this function's shape.
--
-- Each push is still what sync.push_spaces does for a push with no shared space (receipt, head
-- upsert, insert, answer page, under its user's row-level security), and the pushes of a batch
-- come ordered by (user, app) as before. An absent value is '' (nullif below): a change's
-- table, id and op are never empty (the service refuses empty ones), data, fields and extras
-- are JSON objects when present, deletedAt an RFC 3339 time. The served text is put together
-- from the service's two ends of it (p_heads: `{"table":…,"id":…,"op":"…"`; p_tails: deletedAt,
-- spaceId and extras, up to `,"eventId":"`) around the data and fields text as sent (not their
-- jsonb, whose rendering would cost what this saves), closed with the event id drawn here per
-- row: the members sync.change_json gives, compact. The OFFSET 0 keeps the subquery from being
-- flattened, so that each row's id is drawn once and the column and the text carry the same.
--
-- The answer page of a push that stored rows is read below them (sync.page_json_before): every
-- row from the push's first cursor up is its own (the head row it holds numbers them, and no
-- writer of the log passes it before the commit), and its own client's rows are not in its
-- answer, so the page is the same; but page_json's range scan walked through all of them to
-- leave them out (100 index and heap visits for a 100-change push).
--
-- sync.push_batch stays for a replica of the previous version during a rolling deploy.

-- sync.page_json (migration 0013) for all tables, of the rows below p_before.
CREATE FUNCTION sync.page_json_before(p_user text, p_app text, p_since bigint, p_before bigint, p_exclude text, p_limit int)
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
                WHERE c.user_id = p_user AND c.app_id = p_app AND c.cursor > max(p.cursor) AND c.cursor < p_before
                    AND (p_exclude IS NULL OR c.client_id <> p_exclude)
                ORDER BY c.cursor LIMIT 1) IS NOT NULL END AS has_more
        FROM (
            SELECT c.cursor, coalesce(c.served, sync.change_json(c.table_name, c.record_id, c.op, c.data, c.fields, c.deleted_at,
                sync.extra_out(c.space_id, c.extra), c.event_id)) AS json
            FROM sync.changes c
            WHERE c.user_id = p_user AND c.app_id = p_app AND c.cursor > p_since AND c.cursor < p_before
                AND (p_exclude IS NULL OR c.client_id <> p_exclude)
            ORDER BY c.cursor LIMIT p_limit
        ) p
    ) page
$$;

CREATE FUNCTION sync.push_rows(
    p_users text[], p_apps text[], p_clients text[], p_keys text[], p_counts int[], p_since bigint[], p_limits int[],
    p_tables text[], p_records text[], p_ops text[], p_data text[], p_fields text[], p_deleted text[], p_extras text[],
    p_spaces text[], p_heads text[], p_tails text[]
) RETURNS TABLE (n int, stored int, changes text, returned int, synced_until bigint, has_more boolean)
LANGUAGE plpgsql AS $$
DECLARE
    v_from int := 1;   -- the push's first row in the column arrays
    v_to int;          -- its last
    v_count int;       -- rows it stores (0 for a retry)
    v_base bigint;
    v_last bigint;
BEGIN
    IF cardinality(p_tables) IS DISTINCT FROM (SELECT sum(c)::int FROM unnest(p_counts) AS c) THEN
        RAISE EXCEPTION 'sync.push_rows: % rows for pushes of % changes', cardinality(p_tables), (SELECT sum(c) FROM unnest(p_counts) AS c);
    END IF;
    PERFORM sync.enter_spaces('{}');
    FOR i IN 1 .. cardinality(p_users) LOOP
        n := i;
        PERFORM sync.enter_user(p_users[i]);
        v_to := v_from + p_counts[i] - 1;
        v_count := p_counts[i];
        IF p_keys[i] <> '' THEN
            INSERT INTO sync.push_receipts (user_id, app_id, client_id, idempotency_key)
            VALUES (p_users[i], p_apps[i], p_clients[i], p_keys[i]) ON CONFLICT DO NOTHING;
            IF NOT FOUND THEN
                v_count := 0;  -- a retry: stored the first time
            END IF;
        END IF;
        v_last := NULL;
        IF v_count > 0 THEN
            INSERT INTO sync.heads AS h (user_id, app_id, last_cursor)
            VALUES (p_users[i], p_apps[i], (extract(epoch FROM clock_timestamp()) * 1000000)::bigint + v_count - 1)
            ON CONFLICT (user_id, app_id) DO UPDATE SET last_cursor = greatest(
                (extract(epoch FROM clock_timestamp()) * 1000000)::bigint + v_count - 1, h.last_cursor + v_count)
            RETURNING h.last_cursor - v_count + 1 INTO v_base;
            INSERT INTO sync.changes (
                user_id, app_id, cursor, table_name, record_id, op, data, fields, deleted_at, client_id, extra, space_id, event_id, served)
            SELECT p_users[i], p_apps[i], v_base + r.n - 1, r.table_name, r.record_id, r.op, nullif(r.data, '')::jsonb,
                nullif(r.fields, '')::jsonb, nullif(r.deleted_at, ''), p_clients[i], nullif(r.extra, '')::jsonb, nullif(r.space_id, ''),
                r.event_id,
                r.head || CASE WHEN r.data <> '' THEN ',"data":' || r.data ELSE '' END
                    || CASE WHEN r.fields <> '' THEN ',"fields":' || r.fields ELSE '' END || r.tail || r.event_id::text || '"}'
            FROM (
                SELECT u.*, gen_random_uuid() AS event_id
                FROM unnest(p_tables[v_from:v_to], p_records[v_from:v_to], p_ops[v_from:v_to], p_data[v_from:v_to],
                    p_fields[v_from:v_to], p_deleted[v_from:v_to], p_extras[v_from:v_to], p_spaces[v_from:v_to], p_heads[v_from:v_to],
                    p_tails[v_from:v_to])
                    WITH ORDINALITY AS u(table_name, record_id, op, data, fields, deleted_at, extra, space_id, head, tail, n)
                OFFSET 0
            ) r;
            v_last := v_base + v_count - 1;
        END IF;
        v_from := v_to + 1;
        stored := v_count;
        IF p_limits[i] = 0 THEN
            -- No page asked for (the service cut it from memory): what page_json answers for none.
            changes := '[]';
            returned := 0;
            has_more := false;
            synced_until := coalesce(v_last, (SELECT h.last_cursor FROM sync.heads h WHERE h.user_id = p_users[i] AND h.app_id = p_apps[i]), 0);
        ELSIF v_last IS NULL THEN
            SELECT p.changes, p.returned, p.synced_until, p.has_more INTO changes, returned, synced_until, has_more
            FROM sync.page_json(p_users[i], p_apps[i], NULL, p_since[i], p_clients[i], p_limits[i]) AS p;
        ELSE
            -- The same page, read below the push's own rows.
            SELECT p.changes, p.returned, p.synced_until, p.has_more INTO changes, returned, synced_until, has_more
            FROM sync.page_json_before(p_users[i], p_apps[i], p_since[i], v_base, p_clients[i], p_limits[i]) AS p;
        END IF;
        RETURN NEXT;
    END LOOP;
END
$$;

-- Every statement reads and writes by key: planned once per connection (migration 0013).
ALTER FUNCTION sync.push_rows(text[], text[], text[], text[], int[], bigint[], int[], text[], text[], text[], text[], text[], text[],
    text[], text[], text[], text[]) SET plan_cache_mode = force_generic_plan;

DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'mana_sync_rls') THEN
        GRANT EXECUTE ON FUNCTION sync.page_json_before(text, text, bigint, bigint, text, int) TO mana_sync_rls;
        GRANT EXECUTE ON FUNCTION sync.push_rows(text[], text[], text[], text[], int[], bigint[], int[], text[], text[], text[], text[],
            text[], text[], text[], text[], text[], text[]) TO mana_sync_rls;
    END IF;
END
$$;
