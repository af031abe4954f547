-- Pushes of several logs in one transaction (issue 19; docs/sync.md "Pushes together").
-- While every push lane of a process is busy, the pushes that arrive meanwhile wait in the
-- service and go to PostgreSQL together, in one call of this function: one round trip, one
-- transaction and one commit (one WAL flush) for all of them instead of one each.
--
-- Each push is what sync.push_spaces (migration 0015) does for a push with no space, run in
-- turn: its user's row-level security entered (sync.enter_user, per push), its receipt, its
-- head upsert, its rows, its answer page; so cursors, idempotency and answers are those of
-- the same pushes one by one. What needs no table, the rows of every push with their event
-- ids and served text, is built first, for the whole batch in one statement, before any head
-- is locked (0015's reasoning, for all of them at once): a push in a batch costs PostgreSQL
-- about a quarter less than a call of sync.push_spaces per push (pgbench, batches of 15).
-- The no-space branch of sync.push_spaces and the loop below must stay the same push.
--
-- The service sends a batch ordered by (user, app): batches lock heads in one order and
-- cannot deadlock one another. Any error rolls the whole batch back; the service then runs
-- each push alone. p_batches is a JSON array with each push's changes array (sync.push_spaces'
-- p_batch) in the order of the other arrays; an empty p_keys element is no idempotency key.
CREATE FUNCTION sync.push_batch(
    p_users text[], p_apps text[], p_clients text[], p_keys text[], p_batches jsonb, p_since bigint[], p_limits int[]
) RETURNS TABLE (n int, stored int, changes text, returned int, synced_until bigint, has_more boolean)
LANGUAGE plpgsql AS $$
DECLARE
    v_table text[];
    v_record text[];
    v_op text[];
    v_data jsonb[];
    v_fields jsonb[];
    v_deleted text[];
    v_extra jsonb[];
    v_space text[];
    v_event uuid[];
    v_served text[];
    v_from int := 1;   -- the push's first row in the arrays
    v_to int;          -- its last
    v_count int;       -- rows it stores (0 for a retry)
    v_base bigint;
    v_last bigint;
BEGIN
    SELECT array_agg(b.table_name ORDER BY b.p, b.n), array_agg(b.record_id ORDER BY b.p, b.n), array_agg(b.op ORDER BY b.p, b.n),
        array_agg(b.data ORDER BY b.p, b.n), array_agg(b.fields ORDER BY b.p, b.n), array_agg(b.deleted_at ORDER BY b.p, b.n),
        array_agg(b.extra ORDER BY b.p, b.n), array_agg(b.space_id ORDER BY b.p, b.n), array_agg(b.event_id ORDER BY b.p, b.n),
        array_agg(sync.change_json(b.table_name, b.record_id, b.op, b.data, b.fields, b.deleted_at, sync.extra_out(b.space_id, b.extra),
            b.event_id) ORDER BY b.p, b.n)
    INTO v_table, v_record, v_op, v_data, v_fields, v_deleted, v_extra, v_space, v_event, v_served
    FROM (
        SELECT p.n AS p, e.ordinality AS n, e.value->>'table' AS table_name, e.value->>'id' AS record_id, e.value->>'op' AS op,
            e.value->'data' AS data, e.value->'fields' AS fields, e.value->>'deletedAt' AS deleted_at, e.value->'x' AS extra,
            e.value->>'s' AS space_id, gen_random_uuid() AS event_id
        FROM jsonb_array_elements(p_batches) WITH ORDINALITY AS p(value, n), jsonb_array_elements(p.value) WITH ORDINALITY AS e
    ) b;
    PERFORM sync.enter_spaces('{}');
    FOR i IN 1 .. cardinality(p_users) LOOP
        n := i;
        PERFORM sync.enter_user(p_users[i]);
        v_to := v_from + jsonb_array_length(p_batches -> (i - 1)) - 1;
        v_count := v_to - v_from + 1;
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
            SELECT p_users[i], p_apps[i], v_base + r.n - 1, r.table_name, r.record_id, r.op, r.data, r.fields, r.deleted_at, p_clients[i],
                r.extra, r.space_id, r.event_id, r.served
            FROM unnest(v_table[v_from:v_to], v_record[v_from:v_to], v_op[v_from:v_to], v_data[v_from:v_to], v_fields[v_from:v_to],
                v_deleted[v_from:v_to], v_extra[v_from:v_to], v_space[v_from:v_to], v_event[v_from:v_to], v_served[v_from:v_to])
                WITH ORDINALITY AS r(table_name, record_id, op, data, fields, deleted_at, extra, space_id, event_id, served, n);
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
        ELSE
            SELECT p.changes, p.returned, p.synced_until, p.has_more INTO changes, returned, synced_until, has_more
            FROM sync.page_json(p_users[i], p_apps[i], NULL, p_since[i], p_clients[i], p_limits[i]) AS p;
        END IF;
        RETURN NEXT;
    END LOOP;
END
$$;

-- Every statement reads and writes by key: planned once per connection (migration 0013).
ALTER FUNCTION sync.push_batch(text[], text[], text[], text[], jsonb, bigint[], int[]) SET plan_cache_mode = force_generic_plan;

DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'mana_sync_rls') THEN
        GRANT EXECUTE ON FUNCTION sync.push_batch(text[], text[], text[], text[], jsonb, bigint[], int[]) TO mana_sync_rls;
    END IF;
END
$$;
