-- Compacted history (docs/sync.md): each record's changes older than a horizon fold into at
-- most two rows (the Swift side plans which, HistoryFold); these functions carry a plan out.

-- How far a (user, app) has been compacted: rows at or below are folded.
ALTER TABLE sync.heads ADD COLUMN compacted_until bigint NOT NULL DEFAULT 0;

-- The compactor lists the (user, app) pairs with something to fold; heads carry no content.
-- Only a transaction that says it is the compactor (sync.compaction_candidates) sees them all.
CREATE POLICY compactor_lists_heads ON sync.heads FOR SELECT
    USING (current_setting('mana.compactor', true) = 'on');

CREATE FUNCTION sync.compaction_candidates(p_horizon bigint, p_user text)
RETURNS TABLE (user_id text, app_id text)
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM sync.enter_user('');
    PERFORM set_config('mana.compactor', 'on', true);
    RETURN QUERY
        SELECT h.user_id, h.app_id FROM sync.heads h
        WHERE h.compacted_until < p_horizon AND h.last_cursor > h.compacted_until
            AND (p_user IS NULL OR h.user_id = p_user)
        ORDER BY h.user_id, h.app_id;
END
$$;

-- One batch of a plan, as its own transaction: each target row becomes the folded update
-- (for every field, the entry of the row that wins it, verbatim; delivered to every client,
-- so its client id is cleared), then the folded-away rows go. Only rows at or below the
-- horizon are touched, whatever the arrays say.
CREATE FUNCTION sync.compact_apply(
    p_user text, p_app text, p_horizon bigint, p_targets bigint[], p_names text[], p_sources bigint[], p_remove bigint[]
) RETURNS TABLE (rewritten int, removed int)
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM sync.enter_user(p_user);
    UPDATE sync.changes c SET fields = s.fields, client_id = ''
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

-- Records that a (user, app) is folded up to the horizon.
CREATE FUNCTION sync.compaction_done(p_user text, p_app text, p_horizon bigint) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM sync.enter_user(p_user);
    UPDATE sync.heads SET compacted_until = greatest(compacted_until, p_horizon) WHERE user_id = p_user AND app_id = p_app;
END
$$;

DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'mana_sync_rls') THEN
        GRANT DELETE ON sync.changes TO mana_sync_rls;
        GRANT EXECUTE ON FUNCTION sync.compaction_candidates(bigint, text),
            sync.compact_apply(text, text, bigint, bigint[], text[], bigint[], bigint[]),
            sync.compaction_done(text, text, bigint) TO mana_sync_rls;
    END IF;
END
$$;
