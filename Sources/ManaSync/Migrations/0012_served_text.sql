-- Pages from stored text, and a push in fewer steps (issue 19; docs/benchmarks.md, session
-- 33). Each change keeps the JSON it is served as, built once by the push that stores it, so
-- a page of 1,000 changes is one ordered string_agg of stored text instead of 1,000
-- jsonb-to-text conversions, and the page is aggregated in one pass instead of through three
-- materialised CTEs. pgbench, a page of 1,000 of 200,000 rows: 4.2 ms → 2.1 ms.
--
-- The column is nullable and not filled here: rows stored before (and rows copied in by
-- `mana-sync import`) are built on the fly exactly as before (`coalesce`), so this migration
-- rewrites nothing and takes no longer on a large table than on an empty one. The price is
-- storage: the text sits beside the jsonb it was built from (about 170 bytes per small change,
-- the heap about twice as large), which compaction (docs/sync.md) keeps in check.
ALTER TABLE sync.changes ADD COLUMN served text;

-- One page of a user's own changes (migration 0006's page, same results): one pass over at
-- most p_limit + 1 rows in cursor order, the last one only telling whether more remain.
CREATE OR REPLACE FUNCTION sync.page_json(p_user text, p_app text, p_table text, p_since bigint, p_exclude text, p_limit int)
RETURNS TABLE (changes text, returned int, synced_until bigint, has_more boolean)
LANGUAGE sql STABLE AS $$
    SELECT
        '[' || coalesce(string_agg(p.json, ',' ORDER BY p.n) FILTER (WHERE p.n <= p_limit), '') || ']',
        (count(*) FILTER (WHERE p.n <= p_limit))::int,
        CASE WHEN count(*) > p_limit THEN max(p.cursor) FILTER (WHERE p.n <= p_limit)
            ELSE coalesce((SELECT last_cursor FROM sync.heads WHERE user_id = p_user AND app_id = p_app), 0) END,
        count(*) > p_limit
    FROM (
        SELECT c.cursor, row_number() OVER (ORDER BY c.cursor) AS n,
            coalesce(c.served, sync.change_json(c.table_name, c.record_id, c.op, c.data, c.fields, c.deleted_at,
                sync.extra_out(c.space_id, c.extra), c.event_id)) AS json
        FROM (
            SELECT cursor, table_name, record_id, op, data, fields, deleted_at, event_id, extra, space_id, served FROM sync.changes
            WHERE user_id = p_user AND app_id = p_app AND cursor > p_since
                AND (p_table IS NULL OR table_name = p_table) AND (p_exclude IS NULL OR client_id <> p_exclude)
            ORDER BY cursor LIMIT p_limit + 1
        ) c
    ) p
$$;

-- A member's page (migration 0010's), reading the stored text where there is one.
CREATE OR REPLACE FUNCTION sync.page_json_spaces(
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
            (SELECT cursor, user_id, table_name, record_id, op, data, fields, deleted_at, event_id, space_id, extra, served
             FROM sync.changes
             WHERE user_id = p_user AND app_id = p_app AND cursor > greatest(p_since, p_high)
                 AND (p_table IS NULL OR table_name = p_table) AND (p_exclude IS NULL OR client_id <> p_exclude)
             ORDER BY cursor LIMIT p_limit + 1)
            UNION ALL
            (SELECT cursor, user_id, table_name, record_id, op, data, fields, deleted_at, event_id, space_id, extra, served
             FROM sync.space_rows(p_spaces, p_app, p_table, p_user, p_exclude, greatest(p_since, p_high), 9223372036854775807, p_limit + 1)
             ORDER BY cursor LIMIT p_limit + 1)
            UNION ALL
            (SELECT cursor, user_id, table_name, record_id, op, data, fields, deleted_at, event_id, space_id, extra, served
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
            SELECT s.cursor, s.user_id, s.table_name, s.record_id, s.op, s.data, s.fields, s.deleted_at, s.event_id, s.space_id, s.extra, s.served
            FROM lone_cursor l, sync.changes s
            WHERE s.user_id = p_user AND s.app_id = p_app AND s.cursor = l.at AND l.at > p_high
                AND (p_table IS NULL OR s.table_name = p_table) AND (p_exclude IS NULL OR s.client_id <> p_exclude)
            UNION ALL
            SELECT s.cursor, s.user_id, s.table_name, s.record_id, s.op, s.data, s.fields, s.deleted_at, s.event_id, s.space_id, s.extra, s.served
            FROM lone_cursor l, LATERAL sync.space_rows(p_spaces, p_app, p_table, p_user, p_exclude, l.at - 1, l.at, 2147483647) s
            WHERE l.at > p_high
            UNION ALL
            SELECT s.cursor, s.user_id, s.table_name, s.record_id, s.op, s.data, s.fields, s.deleted_at, s.event_id, s.space_id, s.extra, s.served
            FROM lone_cursor l, LATERAL sync.space_rows(p_backfill, p_app, p_table, p_user, p_exclude, l.at - 1, l.at, 2147483647) s
        ) same_cursor ORDER BY cursor, user_id
    )
    SELECT
        '[' || coalesce((
            SELECT string_agg(coalesce(served, sync.change_json(table_name, record_id, op, data, fields, deleted_at,
                    sync.extra_out(space_id, extra), event_id)),
                ',' ORDER BY cursor, event_id)
            FROM page), '') || ']',
        (SELECT count(*)::int FROM page),
        CASE WHEN (SELECT at FROM boundary) IS NULL THEN (SELECT cursor FROM head)
            WHEN EXISTS (SELECT 1 FROM candidates c, boundary b WHERE c.cursor < b.at) THEN (SELECT at - 1 FROM boundary)
            ELSE (SELECT at FROM boundary) END,
        (SELECT at FROM boundary) IS NOT NULL
$$;

-- The user's confinement (migration 0004's), with the role's existence read from the
-- syscache (`to_regrole`) instead of the pg_roles view.
CREATE OR REPLACE FUNCTION sync.enter_user(p_user text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    PERFORM set_config('mana.user_id', p_user, true);
    IF to_regrole('mana_sync_rls') IS NOT NULL AND pg_has_role('mana_sync_rls', 'MEMBER') THEN
        PERFORM set_config('role', 'mana_sync_rls', true);
    END IF;
END
$$;

-- A push (migration 0011's) in fewer steps, storing each change's served text beside it (the
-- event id is drawn here instead of by the column's default, so that the text can carry it).
-- pg_stat_statements inside the push showed work a push of a user in no shared space does not
-- need; pgbench, the function alone, one change, 32 clients, medians of three 4-second runs:
-- 1,236 → 1,541 calls a second (the least SQL: 2,355), with `sync.enter_user` above. Such a
-- push (the common case) skips the record-space bookkeeping (two passes over the batch) and
-- takes its cursors with one upsert of its head row, as the least SQL does: `last_cursor`
-- becomes greatest(now + n - 1, last_cursor + n), the same numbers as the lock, read and update
-- it replaces, under the same row lock until commit.
--
-- The clock is read once every head the push takes is locked (in the upsert, by its DO UPDATE,
-- which runs after the row lock is granted). A member's read holds its heads (FOR SHARE) while
-- it reads the clock for its syncedUntil; a push that waited for one of them must number its
-- changes above that clock, so it must not read the clock before the wait. Migrations 0008 to
-- 0011 read it before locking the space heads: a push that waited behind a read could store
-- changes below the syncedUntil that read had answered, and the reader never saw them
-- (SpaceReadTests.aPushThatWaitedForAReaderNumbersItsChangesAboveTheReadersAnswer).
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
    IF NOT v_spaces THEN
        SELECT p.changes, p.returned, p.synced_until, p.has_more INTO changes, returned, synced_until, has_more
        FROM sync.page_json(p_user, p_app, NULL, p_since, p_client, p_limit) AS p;
    ELSE
        SELECT p.changes, p.returned, p.synced_until, p.has_more INTO changes, returned, synced_until, has_more
        FROM sync.page_json_spaces(p_user, p_app, NULL, p_since, p_client, p_limit, p_write || p_read) AS p;
    END IF;
    RETURN NEXT;
END
$$;

-- Compaction (migration 0005's) rewrites a folded row's fields: its served text is built again.
CREATE OR REPLACE FUNCTION sync.compact_apply(
    p_user text, p_app text, p_horizon bigint, p_targets bigint[], p_names text[], p_sources bigint[], p_remove bigint[]
) RETURNS TABLE (rewritten int, removed int)
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM sync.enter_user(p_user);
    UPDATE sync.changes c SET fields = s.fields, client_id = '',
        served = sync.change_json(c.table_name, c.record_id, c.op, c.data, s.fields, c.deleted_at,
            sync.extra_out(c.space_id, c.extra), c.event_id)
    FROM (
        SELECT w.target, jsonb_object_agg(w.name, src.fields -> w.name) AS fields
        FROM unnest(p_targets, p_names, p_sources) AS w(target, name, source)
        JOIN sync.changes src ON src.user_id = p_user AND src.app_id = p_app AND src.cursor = w.source
        GROUP BY w.target
    ) s
    WHERE c.user_id = p_user AND c.app_id = p_app AND c.cursor = s.target AND c.cursor <= p_horizon AND c.op = 'update';
    GET DIAGNOSTICS rewritten = ROW_COUNT;
    DELETE FROM sync.changes
    WHERE user_id = p_user AND app_id = p_app AND cursor = ANY(p_remove) AND cursor <= p_horizon;
    GET DIAGNOSTICS removed = ROW_COUNT;
    RETURN NEXT;
END
$$;
