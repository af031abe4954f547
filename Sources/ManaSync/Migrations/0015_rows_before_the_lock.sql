-- A push's rows built before its heads are locked (issue 19; docs/benchmarks.md, session 37).
-- Pushes of one user's app wait for each other from the head lock to their commit, so what
-- the push does under that lock sets how many pushes one app takes a second: the mixed
-- scenario (200 devices of one user, five apps) queued on those five locks. Migration 0012's
-- push parsed the batch, drew the event ids and built each change's served text inside its
-- INSERT, after the lock; those now come first, and the INSERT under the lock only numbers and
-- stores the prepared rows. Same rows, same cursors, same answer. A push that asks for no
-- answer page (p_limit 0: the service cut the page from memory, docs/sync.md "Page cache") no
-- longer runs the page query for nothing.
CREATE OR REPLACE FUNCTION sync.push_spaces(
    p_user text, p_app text, p_client text, p_key text, p_batch jsonb, p_count int, p_tables text[], p_since bigint, p_limit int,
    p_write text[], p_read text[]
) RETURNS TABLE (stored int, changes text, returned int, synced_until bigint, has_more boolean)
LANGUAGE plpgsql AS $$
DECLARE
    v_base bigint;
    v_last bigint;
    v_moved bigint;
    v_recorded text;
    v_spaces boolean := cardinality(p_write || p_read) > 0;
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
BEGIN
    PERFORM sync.enter_user(p_user);
    PERFORM sync.enter_spaces(p_write || p_read);
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
        -- another space fails the whole push. p_write lists every shared space the batch
        -- names: empty, there is nothing to record or check.
        IF cardinality(p_write) > 0 THEN
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
        END IF;
        -- The rows as stored, each with its event id and served text, built before any head is
        -- locked: the pushes of one head wait for each other from its lock to their commit.
        SELECT array_agg(b.table_name ORDER BY b.n), array_agg(b.record_id ORDER BY b.n), array_agg(b.op ORDER BY b.n),
            array_agg(b.data ORDER BY b.n), array_agg(b.fields ORDER BY b.n), array_agg(b.deleted_at ORDER BY b.n),
            array_agg(b.extra ORDER BY b.n), array_agg(b.space_id ORDER BY b.n), array_agg(b.event_id ORDER BY b.n),
            array_agg(sync.change_json(b.table_name, b.record_id, b.op, b.data, b.fields, b.deleted_at, sync.extra_out(b.space_id, b.extra),
                b.event_id) ORDER BY b.n)
        INTO v_table, v_record, v_op, v_data, v_fields, v_deleted, v_extra, v_space, v_event, v_served
        FROM (
            SELECT e.ordinality AS n, e.value->>'table' AS table_name, e.value->>'id' AS record_id, e.value->>'op' AS op,
                e.value->'data' AS data, e.value->'fields' AS fields, e.value->>'deletedAt' AS deleted_at, e.value->'x' AS extra,
                e.value->>'s' AS space_id, gen_random_uuid() AS event_id
            FROM jsonb_array_elements(p_batch) WITH ORDINALITY AS e
        ) b;
        IF NOT v_spaces THEN
            -- No space: the cursors in one upsert of the head row (held until commit).
            INSERT INTO sync.heads AS h (user_id, app_id, last_cursor)
            VALUES (p_user, p_app, (extract(epoch FROM clock_timestamp()) * 1000000)::bigint + p_count - 1)
            ON CONFLICT (user_id, app_id) DO UPDATE SET last_cursor = greatest(
                (extract(epoch FROM clock_timestamp()) * 1000000)::bigint + p_count - 1, h.last_cursor + p_count)
            RETURNING h.last_cursor - p_count + 1 INTO v_base;
        ELSE
            INSERT INTO sync.heads (user_id, app_id) VALUES (p_user, p_app) ON CONFLICT DO NOTHING;
            SELECT last_cursor INTO v_base FROM sync.heads WHERE user_id = p_user AND app_id = p_app FOR UPDATE;
            v_base := greatest(v_base, sync.lock_space_heads(p_app, p_write, p_read)) + 1;
            v_base := greatest(v_base, (extract(epoch FROM clock_timestamp()) * 1000000)::bigint);
        END IF;
        INSERT INTO sync.changes (
            user_id, app_id, cursor, table_name, record_id, op, data, fields, deleted_at, client_id, extra, space_id, event_id, served)
        SELECT p_user, p_app, v_base + r.n - 1, r.table_name, r.record_id, r.op, r.data, r.fields, r.deleted_at, p_client, r.extra,
            r.space_id, r.event_id, r.served
        FROM unnest(v_table, v_record, v_op, v_data, v_fields, v_deleted, v_extra, v_space, v_event, v_served)
            WITH ORDINALITY AS r(table_name, record_id, op, data, fields, deleted_at, extra, space_id, event_id, served, n);
        v_last := v_base + p_count - 1;
        IF v_spaces THEN
            UPDATE sync.heads SET last_cursor = v_last WHERE user_id = p_user AND app_id = p_app;
            UPDATE sync.space_heads SET last_cursor = v_last WHERE app_id = p_app AND space_id = ANY(p_write);
        END IF;
        stored := p_count;
    END IF;
    IF stored = 0 AND v_spaces THEN
        -- Nothing written (a retry): the answer page still needs no writer in flight.
        INSERT INTO sync.heads (user_id, app_id) VALUES (p_user, p_app) ON CONFLICT DO NOTHING;
        PERFORM 1 FROM sync.heads WHERE user_id = p_user AND app_id = p_app FOR SHARE;
        PERFORM sync.lock_space_heads(p_app, '{}', p_write || p_read);
    END IF;
    IF NOT v_spaces AND p_limit = 0 THEN
        -- No page asked for (the service cut it from memory): what page_json answers for none.
        changes := '[]';
        returned := 0;
        has_more := false;
        synced_until := coalesce(v_last, (SELECT last_cursor FROM sync.heads WHERE user_id = p_user AND app_id = p_app), 0);
    ELSIF NOT v_spaces THEN
        SELECT p.changes, p.returned, p.synced_until, p.has_more INTO changes, returned, synced_until, has_more
        FROM sync.page_json(p_user, p_app, NULL, p_since, p_client, p_limit) AS p;
    ELSE
        SELECT p.changes, p.returned, p.synced_until, p.has_more INTO changes, returned, synced_until, has_more
        FROM sync.page_json_spaces(p_user, p_app, NULL, p_since, p_client, p_limit, p_write || p_read) AS p;
    END IF;
    RETURN NEXT;
END
$$;

ALTER FUNCTION sync.push_spaces(text, text, text, text, jsonb, int, text[], bigint, int, text[], text[])
    SET plan_cache_mode = force_generic_plan;
