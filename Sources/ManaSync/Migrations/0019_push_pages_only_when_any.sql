-- A push's answer page only when there is one, and its rows read from the columns in place
-- (issue 19; docs/benchmarks.md, session 44).
--
-- Most pushes come from a client that is caught up: no other client of its user wrote to the
-- app between the push's `since` and its own rows, and its answer page is empty. sync.push_rows
-- (migration 0017) still ran sync.page_json_before for it, and PostgreSQL set up that query's
-- whole plan for every push (the aggregate, two subqueries, the served text's expressions, the
-- has-more and head lookups): a profile of one-change pushes at 32 clients had PostgreSQL
-- spending about a third of its time in ExecutorStart, most of it on these pages. Now the
-- function first asks whether any change of another client lies in that range (one probe of
-- changes_pkey, the same range and filter the page reads), and reads the page only when one
-- does. The page it answers otherwise is what sync.page_json_before gives for none: `[]`, no
-- more, synced up to the head, which this transaction holds at the push's last cursor.
--
-- The push's rows are read from the column arrays by position (a series from its first row to
-- its last) instead of from slices of them unnested together: per push, PostgreSQL copied each
-- of the ten columns' slice and set up ten function scans, each filling a tuplestore. The
-- arrays are plpgsql's expanded arrays, read by position in constant time (pgbench, batches of
-- thirty 100-change pushes: 619 -> 759 pushes a second). Each row's event id is still drawn once
-- (OFFSET 0 keeps the series' subquery from being flattened), for its column and its text.
--
-- sync.enter_spaces becomes plpgsql: as an SQL function that returns void (never inlined) its
-- body was parsed and planned on every call (3.6 % of PostgreSQL's time under one-change
-- pushes, one call per batch; every pull and push of a space member paid it too); plpgsql
-- plans its statement once per connection. sync.enter_user, a plpgsql call per push (4.1 %),
-- takes the role for the whole transaction on a batch's first push; the later pushes of the
-- batch only change mana.user_id.
--
-- Same signature, same answers: a replica of the previous version calls it as before.

CREATE OR REPLACE FUNCTION sync.enter_spaces(p_spaces text[]) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    PERFORM set_config('mana.space_ids', coalesce(to_json(p_spaces)::text, '[]'), true);
END
$$;

CREATE OR REPLACE FUNCTION sync.push_rows(
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
        IF i = 1 THEN
            PERFORM sync.enter_user(p_users[i]);  -- the user, and the row-level security role for the transaction
        ELSE
            PERFORM set_config('mana.user_id', p_users[i], true);  -- the role is already taken
        END IF;
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
            SELECT p_users[i], p_apps[i], v_base + r.k - v_from, p_tables[r.k], p_records[r.k], p_ops[r.k],
                nullif(p_data[r.k], '')::jsonb, nullif(p_fields[r.k], '')::jsonb, nullif(p_deleted[r.k], ''), p_clients[i],
                nullif(p_extras[r.k], '')::jsonb, nullif(p_spaces[r.k], ''), r.event_id,
                p_heads[r.k] || CASE WHEN p_data[r.k] <> '' THEN ',"data":' || p_data[r.k] ELSE '' END
                    || CASE WHEN p_fields[r.k] <> '' THEN ',"fields":' || p_fields[r.k] ELSE '' END
                    || p_tails[r.k] || r.event_id::text || '"}'
            FROM (SELECT k, gen_random_uuid() AS event_id FROM generate_series(v_from, v_to) AS k OFFSET 0) r;
            v_last := v_base + v_count - 1;
        END IF;
        v_from := v_to + 1;
        stored := v_count;
        IF p_limits[i] > 0 AND v_last IS NULL THEN
            SELECT p.changes, p.returned, p.synced_until, p.has_more INTO changes, returned, synced_until, has_more
            FROM sync.page_json(p_users[i], p_apps[i], NULL, p_since[i], p_clients[i], p_limits[i]) AS p;
        ELSIF p_limits[i] > 0 AND EXISTS (
            SELECT 1 FROM sync.changes c
            WHERE c.user_id = p_users[i] AND c.app_id = p_apps[i] AND c.cursor > p_since[i] AND c.cursor < v_base
                AND c.client_id <> p_clients[i]
        ) THEN
            -- The same page, read below the push's own rows.
            SELECT p.changes, p.returned, p.synced_until, p.has_more INTO changes, returned, synced_until, has_more
            FROM sync.page_json_before(p_users[i], p_apps[i], p_since[i], v_base, p_clients[i], p_limits[i]) AS p;
        ELSE
            -- No page asked for (the service cut it from memory), or no other client's change
            -- between the push's `since` and its own rows: what the page answers for none, synced
            -- up to the head (which this transaction holds at v_last when the push stored rows).
            changes := '[]';
            returned := 0;
            has_more := false;
            synced_until := coalesce(v_last, (SELECT h.last_cursor FROM sync.heads h WHERE h.user_id = p_users[i] AND h.app_id = p_apps[i]), 0);
        END IF;
        RETURN NEXT;
    END LOOP;
END
$$;

-- CREATE OR REPLACE drops the function's settings (migrations 0017 and 0018): set again.
ALTER FUNCTION sync.push_rows(text[], text[], text[], text[], int[], bigint[], int[], text[], text[], text[], text[], text[], text[],
    text[], text[], text[], text[])
    SET plan_cache_mode = force_generic_plan SET enable_bitmapscan = off SET enable_sort = off;
