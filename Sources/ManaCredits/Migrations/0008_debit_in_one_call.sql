-- A debit takes one round trip: the statements that used to go one by one (lock the
-- balance row, look for the idempotency key, guard, update the balance, insert the ledger
-- row, count the usage, read the balance back) run inside one function call, which is its own
-- transaction when called alone and part of the caller's when called inside one (the
-- subscription and gift paths). Nothing changes in the order of the work:
--
-- * the balance row is locked first, so a concurrent request with the same key waits and
--   then finds the first one's row (each statement in here takes a fresh snapshot: READ
--   COMMITTED, volatile function);
-- * nothing is written unless the debit goes through, so a refusal leaves the caller's
--   transaction usable.
--
-- The outcome says what happened: `debited`, `repeated` (the key's earlier row, same type and
-- amount), `conflict` (the key's earlier row, another amount or type), `no_balance` (the user
-- has no balance row), `insufficient`. The transaction columns are those of
-- `LedgerTransaction.columns` (NULL for `no_balance` and `insufficient`), followed by the
-- outcome and the user's balance after the call.
CREATE FUNCTION credits.debit(
    p_user_id text, p_amount bigint, p_type text, p_app_id text, p_description text, p_metadata jsonb,
    p_idempotency_key text, p_system_key text, p_caller text)
RETURNS TABLE (
    id uuid, user_id text, type text, status text, amount bigint, balance_before bigint, balance_after bigint,
    app_id text, description text, metadata text, idempotency_key text, created_at timestamptz,
    completed_at timestamptz, outcome text, balance bigint, total_earned bigint, total_spent bigint)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    b credits.balances%ROWTYPE;
    t credits.transactions%ROWTYPE;
BEGIN
    SELECT * INTO b FROM credits.balances WHERE credits.balances.user_id = p_user_id FOR UPDATE;
    IF p_system_key IS NOT NULL THEN
        SELECT * INTO t FROM credits.transactions x WHERE x.user_id = p_user_id AND x.system_key = p_system_key;
    ELSIF p_idempotency_key IS NOT NULL THEN
        SELECT * INTO t FROM credits.transactions x WHERE x.user_id = p_user_id AND x.idempotency_key = p_idempotency_key;
    END IF;
    IF t.id IS NOT NULL THEN
        outcome := CASE WHEN t.type = p_type AND t.amount = -p_amount THEN 'repeated' ELSE 'conflict' END;
    ELSIF b.user_id IS NULL THEN
        outcome := 'no_balance';
    ELSIF b.balance < p_amount THEN
        outcome := 'insufficient';
    ELSE
        UPDATE credits.balances SET balance = balance - p_amount, total_spent = total_spent + p_amount, updated_at = now()
        WHERE credits.balances.user_id = p_user_id RETURNING * INTO b;
        INSERT INTO credits.transactions (user_id, type, status, amount, balance_before, balance_after, app_id, description,
            metadata, idempotency_key, system_key, caller, completed_at)
        VALUES (p_user_id, p_type, 'completed', -p_amount, b.balance + p_amount, b.balance, p_app_id, p_description,
            p_metadata, p_idempotency_key, p_system_key, p_caller, clock_timestamp())
        RETURNING * INTO t;
        IF p_type = 'usage' THEN
            INSERT INTO credits.usage_stats AS u (user_id, app_id, day, credits_used, transactions)
            VALUES (p_user_id, p_app_id, (now() AT TIME ZONE 'UTC')::date, p_amount, 1)
            ON CONFLICT (user_id, app_id, day) DO UPDATE SET
                credits_used = u.credits_used + EXCLUDED.credits_used, transactions = u.transactions + 1;
        END IF;
        outcome := 'debited';
    END IF;
    id := t.id; user_id := t.user_id; type := t.type; status := t.status; amount := t.amount;
    balance_before := t.balance_before; balance_after := t.balance_after; app_id := t.app_id;
    description := t.description; metadata := t.metadata::text; idempotency_key := t.idempotency_key;
    created_at := t.created_at; completed_at := t.completed_at;
    balance := coalesce(b.balance, 0); total_earned := coalesce(b.total_earned, 0); total_spent := coalesce(b.total_spent, 0);
    RETURN NEXT;
END
$$;
