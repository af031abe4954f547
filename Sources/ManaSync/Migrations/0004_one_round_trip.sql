-- A push and a pull each take one round trip: the statements that used to go one by one
-- (RLS setup, receipt, head lock and advance, insert, notify, answer page) run inside one
-- function call, which is its own transaction. Each statement inside still takes a fresh
-- snapshot (READ COMMITTED, volatile functions), so the answer page is read after the head
-- lock exactly as before, and its cursor never passes a change that was not yet visible.

-- Confines the transaction to one user: the RLS setting, and the role without BYPASSRLS where
-- the migration could make one.
CREATE FUNCTION sync.enter_user(p_user text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    PERFORM set_config('mana.user_id', p_user, true);
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'mana_sync_rls') AND pg_has_role('mana_sync_rls', 'MEMBER') THEN
        PERFORM set_config('role', 'mana_sync_rls', true);
    END IF;
END
$$;

-- One page of changes after p_since as JSON text, built here in one pass: the changes array
-- (each change in the shape it came in, extras spliced in, eventId last), the cursor the
-- reader has now seen everything up to, and whether more remain. Page and head come from one
-- snapshot (one statement).
CREATE FUNCTION sync.page_json(p_user text, p_app text, p_table text, p_since bigint, p_exclude text, p_limit int)
RETURNS TABLE (changes text, returned int, synced_until bigint, has_more boolean)
LANGUAGE sql STABLE AS $$
    WITH head AS (
        SELECT coalesce((SELECT last_cursor FROM sync.heads WHERE user_id = p_user AND app_id = p_app), 0) AS cursor
    ), candidates AS (
        SELECT cursor, table_name, record_id, op, data, fields, deleted_at, event_id, extra FROM sync.changes
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

-- A pull: one table's page, confined to the user.
CREATE FUNCTION sync.pull(p_user text, p_app text, p_table text, p_since bigint, p_exclude text, p_limit int)
RETURNS TABLE (changes text, returned int, synced_until bigint, has_more boolean)
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM sync.enter_user(p_user);
    RETURN QUERY SELECT * FROM sync.page_json(p_user, p_app, p_table, p_since, p_exclude, p_limit);
END
$$;

-- A push: the receipt of its idempotency key (a retry stores nothing), the head locked and
-- moved past the batch's cursors, the batch inserted, every replica notified on commit, and
-- the answer page of other clients' changes after p_since (all tables).
CREATE FUNCTION sync.push(
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
        INSERT INTO sync.changes (user_id, app_id, cursor, table_name, record_id, op, data, fields, deleted_at, client_id, extra)
        SELECT p_user, p_app, v_base + e.ordinality - 1, e.value->>'table', e.value->>'id', e.value->>'op',
            e.value->'data', e.value->'fields', e.value->>'deletedAt', p_client, e.value->'x'
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
        GRANT EXECUTE ON FUNCTION sync.enter_user(text), sync.page_json(text, text, text, bigint, text, int),
            sync.pull(text, text, text, bigint, text, int),
            sync.push(text, text, text, text, jsonb, int, text[], bigint, int) TO mana_sync_rls;
    END IF;
END
$$;
