-- Shared spaces, third part (docs/sync.md, "Shared spaces"): members read a space's rows,
-- and cursors stay safe with several writers in one space.
--
-- Each (space, app) has a head. A push into spaces locks its own head, then the heads of every
-- space it writes or reads, in sorted order (FOR UPDATE the ones it writes, FOR SHARE the
-- others), and numbers its changes above all the heads it writes. A member's read share-locks
-- its own head and its spaces' heads in the same order: no push into anything it reads is in
-- flight while it reads, and every later push takes cursors above its clock.
CREATE TABLE sync.space_heads (
    space_id text NOT NULL,
    app_id text NOT NULL,
    last_cursor bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (space_id, app_id)
);

-- The spaces of the transaction's user (a JSON array of ids, set by sync.enter_spaces).
CREATE FUNCTION sync.current_spaces() RETURNS text[] LANGUAGE sql STABLE AS $$
    SELECT coalesce(array(SELECT jsonb_array_elements_text(nullif(current_setting('mana.space_ids', true), '')::jsonb)), '{}')
$$;

CREATE FUNCTION sync.enter_spaces(p_spaces text[]) RETURNS void LANGUAGE sql AS $$
    SELECT set_config('mana.space_ids', coalesce(to_json(p_spaces)::text, '[]'), true)
$$;

ALTER TABLE sync.space_heads ENABLE ROW LEVEL SECURITY;
ALTER TABLE sync.space_heads FORCE ROW LEVEL SECURITY;
CREATE POLICY member_rows ON sync.space_heads
    USING (space_id = ANY(sync.current_spaces())) WITH CHECK (space_id = ANY(sync.current_spaces()));
-- Members read the rows of their spaces, whoever wrote them (writes stay the author's own).
CREATE POLICY space_rows ON sync.changes FOR SELECT
    USING (space_id IS NOT NULL AND space_id = ANY(sync.current_spaces()));

CREATE INDEX changes_by_space ON sync.changes (space_id, app_id, table_name, cursor)
    WHERE space_id IS NOT NULL AND space_id NOT LIKE '\_personal:%';

-- Creates the missing heads, then locks them all in one order: own head first, then the
-- spaces sorted, FOR UPDATE those in p_write, FOR SHARE the others. Returns the largest
-- last_cursor of the written spaces (0 for none).
CREATE FUNCTION sync.lock_space_heads(p_app text, p_write text[], p_read text[]) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    v_space text;
    v_last bigint;
    v_max bigint := 0;
BEGIN
    INSERT INTO sync.space_heads (space_id, app_id)
    SELECT s, p_app FROM (SELECT DISTINCT unnest(coalesce(p_write, '{}') || coalesce(p_read, '{}')) AS s ORDER BY 1) spaces
    ON CONFLICT DO NOTHING;
    FOR v_space IN SELECT DISTINCT unnest(coalesce(p_write, '{}') || coalesce(p_read, '{}')) ORDER BY 1 LOOP
        IF v_space = ANY(coalesce(p_write, '{}')) THEN
            SELECT last_cursor INTO v_last FROM sync.space_heads WHERE space_id = v_space AND app_id = p_app FOR UPDATE;
            v_max := greatest(v_max, v_last);
        ELSE
            PERFORM 1 FROM sync.space_heads WHERE space_id = v_space AND app_id = p_app FOR SHARE;
        END IF;
    END LOOP;
    RETURN v_max;
END
$$;

-- One page of a member's changes after p_since: own rows and the rows of p_spaces, as JSON
-- text (the shape of sync.page_json). Rows of different heads can share a cursor, so a full
-- page ends before the cursor of the first row left out (syncedUntil one below it); a page
-- that would be empty takes every row of that cursor instead. With no more rows, syncedUntil
-- is the smallest of max(head, clock) over the heads read (the epoch while all are 0). Only
-- the caller's own rows are left out for p_exclude.
CREATE FUNCTION sync.page_json_spaces(
    p_user text, p_app text, p_table text, p_since bigint, p_exclude text, p_limit int, p_spaces text[]
) RETURNS TABLE (changes text, returned int, synced_until bigint, has_more boolean)
LANGUAGE sql STABLE AS $$
    WITH heads AS (
        SELECT last_cursor FROM sync.heads WHERE user_id = p_user AND app_id = p_app
        UNION ALL SELECT last_cursor FROM sync.space_heads WHERE app_id = p_app AND space_id = ANY(p_spaces)
    ), head AS (
        SELECT CASE WHEN coalesce(max(last_cursor), 0) = 0 THEN 0
            ELSE min(greatest(last_cursor, (extract(epoch FROM clock_timestamp()) * 1000000)::bigint)) END AS cursor
        FROM heads
    ), candidates AS (
        SELECT * FROM (
            (SELECT cursor, table_name, record_id, op, data, fields, deleted_at, event_id, sync.extra_out(space_id, extra) AS extra
             FROM sync.changes
             WHERE user_id = p_user AND app_id = p_app AND cursor > p_since
                 AND (p_table IS NULL OR table_name = p_table) AND (p_exclude IS NULL OR client_id <> p_exclude)
             ORDER BY cursor LIMIT p_limit + 1)
            UNION ALL
            (SELECT cursor, table_name, record_id, op, data, fields, deleted_at, event_id, sync.extra_out(space_id, extra)
             FROM sync.changes
             WHERE space_id = ANY(p_spaces) AND app_id = p_app AND user_id <> p_user AND cursor > p_since
                 AND (p_table IS NULL OR table_name = p_table)
             ORDER BY cursor LIMIT p_limit + 1)
        ) both_kinds ORDER BY cursor LIMIT p_limit + 1
    ), boundary AS (
        -- The cursor of the first row left out, when there is one.
        SELECT (SELECT cursor FROM candidates ORDER BY cursor OFFSET p_limit LIMIT 1) AS at
    ), page AS (
        SELECT c.* FROM candidates c, boundary b WHERE b.at IS NULL OR c.cursor < b.at
        UNION ALL
        -- Every candidate shares the boundary's cursor: all rows of that cursor.
        SELECT * FROM (
            SELECT s.cursor, s.table_name, s.record_id, s.op, s.data, s.fields, s.deleted_at, s.event_id, sync.extra_out(s.space_id, s.extra)
            FROM sync.changes s, boundary b
            WHERE b.at IS NOT NULL AND NOT EXISTS (SELECT 1 FROM candidates c WHERE c.cursor < b.at)
                AND s.cursor = b.at AND s.app_id = p_app
                AND (p_table IS NULL OR s.table_name = p_table)
                AND ((s.user_id = p_user AND (p_exclude IS NULL OR s.client_id <> p_exclude))
                     OR (s.space_id = ANY(p_spaces) AND s.user_id <> p_user))
        ) same_cursor
    )
    SELECT
        '[' || coalesce((
            SELECT string_agg(sync.change_json(table_name, record_id, op, data, fields, deleted_at, extra, event_id),
                ',' ORDER BY cursor, event_id)
            FROM page), '') || ']',
        (SELECT count(*)::int FROM page),
        CASE WHEN (SELECT at FROM boundary) IS NULL THEN (SELECT cursor FROM head)
            WHEN EXISTS (SELECT 1 FROM candidates c, boundary b WHERE c.cursor < b.at) THEN (SELECT at - 1 FROM boundary)
            ELSE (SELECT at FROM boundary) END,
        (SELECT at FROM boundary) IS NOT NULL
$$;

-- A member's pull: confined to the user and its spaces, heads locked, then the page.
CREATE FUNCTION sync.pull_spaces(
    p_user text, p_app text, p_table text, p_since bigint, p_exclude text, p_limit int, p_spaces text[]
) RETURNS TABLE (changes text, returned int, synced_until bigint, has_more boolean)
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM sync.enter_user(p_user);
    PERFORM sync.enter_spaces(p_spaces);
    INSERT INTO sync.heads (user_id, app_id) VALUES (p_user, p_app) ON CONFLICT DO NOTHING;
    PERFORM 1 FROM sync.heads WHERE user_id = p_user AND app_id = p_app FOR SHARE;
    PERFORM sync.lock_space_heads(p_app, '{}', p_spaces);
    RETURN QUERY SELECT * FROM sync.page_json_spaces(p_user, p_app, p_table, p_since, p_exclude, p_limit, p_spaces);
END
$$;

-- A push: the receipt of its idempotency key (a retry stores nothing), the record's first
-- space kept (a change moving it elsewhere fails the push, 409), the heads locked and moved
-- past the batch's cursors (its own, then the spaces it writes (p_write, FOR UPDATE) and
-- reads (p_read, FOR SHARE), sorted), the batch inserted with its spaces, every replica
-- notified on commit (the notice names the spaces written, `s`), and the answer page of other
-- clients' changes after p_since: own rows, and the spaces' rows for a member.
CREATE FUNCTION sync.push_spaces(
    p_user text, p_app text, p_client text, p_key text, p_batch jsonb, p_count int, p_tables text[], p_since bigint, p_limit int,
    p_write text[], p_read text[]
) RETURNS TABLE (stored int, changes text, returned int, synced_until bigint, has_more boolean)
LANGUAGE plpgsql AS $$
DECLARE
    v_base bigint;
    v_last bigint;
    v_notice text;
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
        -- Delivered to every replica's listener when (and only if) this transaction commits;
        -- the table list is left out when the notice would be too long for NOTIFY.
        v_notice := json_build_object('a', p_app, 'c', p_client, 'f', v_base::text, 'k', 'push', 'l', v_last::text,
            's', p_write, 't', p_tables, 'u', p_user)::text;
        IF octet_length(v_notice) > 7000 THEN
            v_notice := json_build_object('a', p_app, 'c', p_client, 'f', v_base::text, 'k', 'push', 'l', v_last::text,
                's', p_write, 't', NULL, 'u', p_user)::text;
        END IF;
        PERFORM pg_notify('mana_sync_events', v_notice);
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

-- The push of a user in no space: the same function without spaces.
CREATE OR REPLACE FUNCTION sync.push(
    p_user text, p_app text, p_client text, p_key text, p_batch jsonb, p_count int, p_tables text[], p_since bigint, p_limit int
) RETURNS TABLE (stored int, changes text, returned int, synced_until bigint, has_more boolean)
LANGUAGE sql AS $$
    SELECT * FROM sync.push_spaces(p_user, p_app, p_client, p_key, p_batch, p_count, p_tables, p_since, p_limit, '{}', '{}')
$$;

DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'mana_sync_rls') THEN
        GRANT SELECT, INSERT, UPDATE ON sync.space_heads TO mana_sync_rls;
        GRANT EXECUTE ON FUNCTION sync.current_spaces(), sync.enter_spaces(text[]), sync.lock_space_heads(text, text[], text[]),
            sync.page_json_spaces(text, text, text, bigint, text, int, text[]),
            sync.pull_spaces(text, text, text, bigint, text, int, text[]),
            sync.push_spaces(text, text, text, text, jsonb, int, text[], bigint, int, text[], text[]) TO mana_sync_rls;
    END IF;
END
$$;
