-- A push no longer notifies inside its transaction (issue 19; docs/benchmarks.md, session
-- 32): PostgreSQL serialises the commits of every transaction that sent a NOTIFY (one lock
-- for the database, held through the commit's WAL flush), which halved the ceiling of
-- one-change pushes at 32 clients (pgbench: 1,800 → 1,000 per second). mana-sync announces a
-- push after its commit instead (`PushNotifier`, many pushes per NOTIFY statement). The rest
-- of the function is migration 0008's.

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
        IF cardinality(p_write || p_read) > 0 THEN
            v_base := greatest(v_base, sync.lock_space_heads(p_app, p_write, p_read) + 1);
        END IF;
        INSERT INTO sync.changes (user_id, app_id, cursor, table_name, record_id, op, data, fields, deleted_at, client_id, extra, space_id)
        SELECT p_user, p_app, v_base + e.ordinality - 1, e.value->>'table', e.value->>'id', e.value->>'op',
            e.value->'data', e.value->'fields', e.value->>'deletedAt', p_client, e.value->'x', e.value->>'s'
        FROM jsonb_array_elements(p_batch) WITH ORDINALITY AS e;
        v_last := v_base + p_count - 1;
        UPDATE sync.heads SET last_cursor = v_last WHERE user_id = p_user AND app_id = p_app;
        UPDATE sync.space_heads SET last_cursor = v_last WHERE app_id = p_app AND space_id = ANY(p_write);
        stored := p_count;
    END IF;
    IF stored = 0 AND cardinality(p_write || p_read) > 0 THEN
        -- Nothing written (a retry): the answer page still needs no writer in flight.
        INSERT INTO sync.heads (user_id, app_id) VALUES (p_user, p_app) ON CONFLICT DO NOTHING;
        PERFORM 1 FROM sync.heads WHERE user_id = p_user AND app_id = p_app FOR SHARE;
        PERFORM sync.lock_space_heads(p_app, '{}', p_write || p_read);
    END IF;
    IF cardinality(p_write || p_read) = 0 THEN
        SELECT p.changes, p.returned, p.synced_until, p.has_more INTO changes, returned, synced_until, has_more
        FROM sync.page_json(p_user, p_app, NULL, p_since, p_client, p_limit) AS p;
    ELSE
        SELECT p.changes, p.returned, p.synced_until, p.has_more INTO changes, returned, synced_until, has_more
        FROM sync.page_json_spaces(p_user, p_app, NULL, p_since, p_client, p_limit, p_write || p_read) AS p;
    END IF;
    RETURN NEXT;
END
$$;
