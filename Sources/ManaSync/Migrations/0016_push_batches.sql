-- Pushes of several logs in one transaction (issue 19; docs/sync.md "Push batches").
-- While every push lane of a process is busy, the pushes that arrive meanwhile wait in the
-- service and go to PostgreSQL together, in one call of this function: one round trip, one
-- transaction and one commit (one WAL flush) for all of them instead of one each. Each push
-- is exactly sync.push_spaces with no spaces, run in turn (its user's row-level security
-- entered first, its receipt, head, rows and answer page), so cursors, idempotency and
-- answers are those of the same pushes one by one. The service sends a batch ordered by
-- (user, app): batches lock heads in one order and cannot deadlock one another. Any error
-- rolls the whole batch back; the service then runs each push alone.
--
-- p_batches is a JSON array with each push's changes array (sync.push_spaces' p_batch) in
-- the order of the other arrays; an empty p_keys element is no idempotency key.
CREATE FUNCTION sync.push_batch(
    p_users text[], p_apps text[], p_clients text[], p_keys text[], p_batches jsonb, p_counts int[], p_since bigint[], p_limits int[]
) RETURNS TABLE (n int, stored int, changes text, returned int, synced_until bigint, has_more boolean)
LANGUAGE plpgsql AS $$
BEGIN
    FOR i IN 1 .. cardinality(p_users) LOOP
        n := i;
        SELECT p.stored, p.changes, p.returned, p.synced_until, p.has_more INTO stored, changes, returned, synced_until, has_more
        FROM sync.push_spaces(p_users[i], p_apps[i], p_clients[i], nullif(p_keys[i], ''), p_batches -> (i - 1), p_counts[i], '{}',
            p_since[i], p_limits[i], '{}', '{}') AS p;
        RETURN NEXT;
    END LOOP;
END
$$;

DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'mana_sync_rls') THEN
        GRANT EXECUTE ON FUNCTION sync.push_batch(text[], text[], text[], text[], jsonb, int[], bigint[], int[]) TO mana_sync_rls;
    END IF;
END
$$;
