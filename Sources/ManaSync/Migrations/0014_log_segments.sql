-- A stretch of a user's own log for the page cache (docs/sync.md, "Page cache"): the next
-- p_limit changes after p_since, every table and client, each with the text it is served as,
-- read in one snapshot under the user's confinement. Every change with p_since < cursor ≤ the
-- last cursor returned is in it (the log grows only above its head).
CREATE FUNCTION sync.log_segment(p_user text, p_app text, p_since bigint, p_limit int)
RETURNS TABLE (at bigint, table_name text, client_id text, served text)
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM sync.enter_user(p_user);
    RETURN QUERY
        SELECT c.cursor, c.table_name, c.client_id,
            coalesce(c.served, sync.change_json(c.table_name, c.record_id, c.op, c.data, c.fields, c.deleted_at,
                sync.extra_out(c.space_id, c.extra), c.event_id))
        FROM sync.changes c
        WHERE c.user_id = p_user AND c.app_id = p_app AND c.cursor > p_since
        ORDER BY c.cursor LIMIT p_limit;
END
$$;
