-- Shared spaces, fourth part (docs/sync.md, "Backfill on join"): a reader that joins a space
-- receives the rows of that space it had passed before it joined, on its next reads, paged,
-- without a client change.
--
-- A reader is one client (X-Client-Id, '' without one) of a user reading one table of an
-- app; sync.space_backfills keeps, per reader, the spaces it has read (`known`), the ones
-- still being backfilled (`pending`), the cursor it had reached when the backfill began
-- (`high`), and whether a backfill page reached `high` (`reached`).
--
-- The client's own `since` is the acknowledgement, so a lost response loses nothing:
-- - The first read after the join (or a read at exactly `high`) restarts from cursor 0: the
--   pending spaces' rows from the start, everything else only above `high` (the client has
--   it). Its syncedUntil stays below `high` and says hasMore.
-- - A read below `high` goes on from its since.
-- - The first read past `high` after a page reached `high` ends the backfill; a read past
--   `high` without that (the client jumped ahead through a push answer) restarts.
-- - since 0 is a full read: nothing to backfill.
CREATE TABLE sync.space_backfills (
    user_id text NOT NULL,
    app_id text NOT NULL,
    table_name text NOT NULL,
    client_id text NOT NULL,
    known text[] NOT NULL,
    pending text[] NOT NULL DEFAULT '{}',
    high bigint NOT NULL DEFAULT 0,
    reached boolean NOT NULL DEFAULT false,
    PRIMARY KEY (user_id, app_id, table_name, client_id)
);
ALTER TABLE sync.space_backfills ENABLE ROW LEVEL SECURITY;
ALTER TABLE sync.space_backfills FORCE ROW LEVEL SECURITY;
CREATE POLICY user_rows ON sync.space_backfills
    USING (user_id = current_setting('mana.user_id', true)) WITH CHECK (user_id = current_setting('mana.user_id', true));

-- A member's pull: confined to the user and its spaces, heads locked, the reader's backfill
-- state brought up to date (see the top of this file), then the page (the nine-argument
-- sync.page_json_spaces of migration 0010: the pending spaces' rows after the page's start,
-- everything else after greatest(start, high)).
CREATE OR REPLACE FUNCTION sync.pull_spaces(
    p_user text, p_app text, p_table text, p_since bigint, p_exclude text, p_limit int, p_spaces text[]
) RETURNS TABLE (changes text, returned int, synced_until bigint, has_more boolean)
LANGUAGE plpgsql AS $$
DECLARE
    v_client text := coalesce(p_exclude, '');
    v_spaces text[] := array(SELECT DISTINCT s FROM unnest(p_spaces) AS s WHERE s NOT LIKE '\_personal:%' ORDER BY 1);
    v_state sync.space_backfills;
    v_pending text[] := '{}';
    v_high bigint := 0;
    v_reached boolean := false;
    v_restart boolean := false;
    v_joined boolean;
    v_page record;
BEGIN
    PERFORM sync.enter_user(p_user);
    PERFORM sync.enter_spaces(p_spaces);
    INSERT INTO sync.heads (user_id, app_id) VALUES (p_user, p_app) ON CONFLICT DO NOTHING;
    PERFORM 1 FROM sync.heads WHERE user_id = p_user AND app_id = p_app FOR SHARE;
    PERFORM sync.lock_space_heads(p_app, '{}', p_spaces);
    IF cardinality(v_spaces) > 0 THEN
        -- Not locked: reads of one reader at the same time compute the same next state from the
        -- same since, and a reader's pulls follow each other anyway.
        SELECT * INTO v_state FROM sync.space_backfills
        WHERE user_id = p_user AND app_id = p_app AND table_name = p_table AND client_id = v_client;
        IF p_since > 0 THEN
            v_joined := EXISTS (SELECT 1 FROM unnest(v_spaces) AS s WHERE NOT s = ANY(coalesce(v_state.known, '{}')));
            v_pending := array(SELECT s FROM unnest(v_spaces) AS s
                WHERE s = ANY(coalesce(v_state.pending, '{}')) OR NOT s = ANY(coalesce(v_state.known, '{}')) ORDER BY 1);
            v_high := coalesce(v_state.high, 0);
            v_reached := coalesce(v_state.reached, false);
            IF cardinality(v_pending) = 0 THEN
                v_high := 0;
                v_reached := false;
            ELSIF v_joined THEN
                v_high := greatest(v_high, p_since);
                v_reached := false;
                v_restart := true;
            ELSIF p_since > v_high OR (p_since = v_high AND v_reached) THEN
                IF v_reached THEN
                    v_pending := '{}';
                    v_high := 0;
                    v_reached := false;
                ELSE
                    v_restart := true;
                END IF;
            ELSIF p_since = v_high THEN
                v_restart := true;
            END IF;
        END IF;
    END IF;
    IF cardinality(v_pending) = 0 THEN
        SELECT * INTO v_page FROM sync.page_json_spaces(p_user, p_app, p_table, p_since, p_exclude, p_limit, p_spaces, '{}', 0);
    ELSE
        SELECT * INTO v_page FROM sync.page_json_spaces(p_user, p_app, p_table, CASE WHEN v_restart THEN 0 ELSE p_since END,
            p_exclude, p_limit, array(SELECT s FROM unnest(p_spaces) AS s WHERE NOT s = ANY(v_pending)), v_pending, v_high);
        IF v_restart THEN
            -- The client's next since must show that it got this page: below high.
            IF v_page.synced_until >= v_high THEN
                v_page.synced_until := v_high - 1;
                v_page.has_more := true;
            END IF;
        ELSIF NOT v_page.has_more OR v_page.synced_until > v_high THEN
            -- Every pending row up to high is on its way; the client has the rest up to high.
            v_page.synced_until := greatest(v_page.synced_until, v_high);
            v_reached := true;
        END IF;
    END IF;
    IF cardinality(v_spaces) > 0 AND (v_state.user_id IS NULL OR v_state.known IS DISTINCT FROM v_spaces
            OR v_state.pending IS DISTINCT FROM v_pending OR v_state.high IS DISTINCT FROM v_high
            OR v_state.reached IS DISTINCT FROM v_reached) THEN
        INSERT INTO sync.space_backfills AS b (user_id, app_id, table_name, client_id, known, pending, high, reached)
        VALUES (p_user, p_app, p_table, v_client, v_spaces, v_pending, v_high, v_reached)
        ON CONFLICT (user_id, app_id, table_name, client_id) DO UPDATE
            SET known = excluded.known, pending = excluded.pending, high = excluded.high, reached = excluded.reached;
    END IF;
    RETURN QUERY SELECT v_page.changes, v_page.returned, v_page.synced_until, v_page.has_more;
END
$$;

DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'mana_sync_rls') THEN
        GRANT SELECT, INSERT, UPDATE ON sync.space_backfills TO mana_sync_rls;
    END IF;
END
$$;
