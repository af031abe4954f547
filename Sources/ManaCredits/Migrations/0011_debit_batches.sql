-- Debits of several users in one transaction (issue 19; docs/credits.md "Debit batches").
-- While every debit lane of a process is busy, the debits that arrive meanwhile wait in the
-- service and go to PostgreSQL together, in one call of this function: one round trip, one
-- transaction and one commit for all of them. Each debit is exactly credits.debit, run in
-- turn, so balances, guards, idempotency, ledger rows and usage counts are those of the same
-- debits one by one (a 402 or 409 outcome writes nothing and leaves the others alone). The
-- service orders a batch by user: batches lock balance rows in one order and cannot deadlock
-- one another. Any error rolls the whole batch back; the service then runs each debit alone.
--
-- p_metadata is a JSON array with one object per debit: {"m": metadata} when the debit has
-- metadata, {} when it has none. Each row is credits.debit's, with the debit's place in
-- the arrays last. Empty p_keys, p_system_keys and p_callers elements are none.
CREATE FUNCTION credits.debit_batch(
    p_users text[], p_amounts bigint[], p_types text[], p_apps text[], p_descriptions text[], p_metadata jsonb,
    p_keys text[], p_system_keys text[], p_callers text[])
RETURNS TABLE (
    id uuid, user_id text, type text, status text, amount bigint, balance_before bigint, balance_after bigint,
    app_id text, description text, metadata text, idempotency_key text, created_at timestamptz,
    completed_at timestamptz, outcome text, balance bigint, total_earned bigint, total_spent bigint, n int)
LANGUAGE plpgsql AS $$
BEGIN
    FOR i IN 1 .. cardinality(p_users) LOOP
        RETURN QUERY SELECT d.*, i FROM credits.debit(p_users[i], p_amounts[i], p_types[i], p_apps[i], p_descriptions[i],
            p_metadata -> (i - 1) -> 'm', nullif(p_keys[i], ''), nullif(p_system_keys[i], ''), nullif(p_callers[i], '')) AS d;
    END LOOP;
END
$$;
