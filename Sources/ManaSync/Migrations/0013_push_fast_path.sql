-- A push in fewer steps (issue 19; docs/benchmarks.md, session 33). pgbench, the push
-- function alone, one change, 32 clients, medians of three 4-second runs: 1,236 → 1,541 calls
-- a second (the least SQL: 2,355).
-- - A push that names no shared space (the common case) skips the record-space bookkeeping
--   (two passes over the batch) and takes its cursors with one upsert of its head row, as the
--   least SQL does: `last_cursor` becomes greatest(now + n - 1, last_cursor + n), the same
--   numbers as the lock, read and update it replaces, under the same row lock until commit.
-- - The user, the spaces and the role are set here, not in two nested function calls, and
--   the role's existence is read from the syscache (`to_regrole`) instead of the pg_roles view.
-- Everything else is migration 0012's push.

CREATE OR REPLACE FUNCTION sync.enter_user(p_user text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    PERFORM set_config('mana.user_id', p_user, true);
    IF to_regrole('mana_sync_rls') IS NOT NULL AND pg_has_role('mana_sync_rls', 'MEMBER') THEN
        PERFORM set_config('role', 'mana_sync_rls', true);
    END IF;
END
$$;

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
    PERFORM set_config('mana.user_id', p_user, true), set_config('mana.space_ids', coalesce(to_json(p_write || p_read)::text, '[]'), true);
    IF to_regrole('mana_sync_rls') IS NOT NULL AND pg_has_role('mana_sync_rls', 'MEMBER') THEN
        PERFORM set_config('role', 'mana_sync_rls', true);
    END IF;
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
        IF cardinality(p_write || p_read) = 0 THEN
            -- No space: the cursors in one upsert of the head row (held until commit).
            INSERT INTO sync.heads AS h (user_id, app_id, last_cursor)
            VALUES (p_user, p_app, (extract(epoch FROM clock_timestamp()) * 1000000)::bigint + p_count - 1)
            ON CONFLICT (user_id, app_id) DO UPDATE SET last_cursor = greatest(EXCLUDED.last_cursor, h.last_cursor + p_count)
            RETURNING h.last_cursor - p_count + 1 INTO v_base;
        ELSE
            INSERT INTO sync.heads (user_id, app_id) VALUES (p_user, p_app) ON CONFLICT DO NOTHING;
            SELECT greatest((extract(epoch FROM clock_timestamp()) * 1000000)::bigint, last_cursor + 1) INTO v_base
            FROM sync.heads WHERE user_id = p_user AND app_id = p_app FOR UPDATE;
            v_base := greatest(v_base, sync.lock_space_heads(p_app, p_write, p_read) + 1);
        END IF;
        INSERT INTO sync.changes (
            user_id, app_id, cursor, table_name, record_id, op, data, fields, deleted_at, client_id, extra, space_id, event_id, served)
        SELECT p_user, p_app, v_base + b.n - 1, b.table_name, b.record_id, b.op, b.data, b.fields, b.deleted_at, p_client, b.extra,
            b.space_id, b.event_id,
            sync.change_json(b.table_name, b.record_id, b.op, b.data, b.fields, b.deleted_at, sync.extra_out(b.space_id, b.extra), b.event_id)
        FROM (
            SELECT e.ordinality AS n, e.value->>'table' AS table_name, e.value->>'id' AS record_id, e.value->>'op' AS op,
                e.value->'data' AS data, e.value->'fields' AS fields, e.value->>'deletedAt' AS deleted_at, e.value->'x' AS extra,
                e.value->>'s' AS space_id, gen_random_uuid() AS event_id
            FROM jsonb_array_elements(p_batch) WITH ORDINALITY AS e
        ) b;
        v_last := v_base + p_count - 1;
        IF cardinality(p_write || p_read) > 0 THEN
            UPDATE sync.heads SET last_cursor = v_last WHERE user_id = p_user AND app_id = p_app;
            UPDATE sync.space_heads SET last_cursor = v_last WHERE app_id = p_app AND space_id = ANY(p_write);
        END IF;
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

