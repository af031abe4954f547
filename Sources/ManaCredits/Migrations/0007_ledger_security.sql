-- Keys the service makes for itself (the renewal's `sync-renewal:<due>`, `internal-refund:<key>`) live in
-- their own column, which no route lets a user write: a user's idempotencyKey can never
-- collide with one.
ALTER TABLE credits.transactions ADD COLUMN system_key text;
ALTER TABLE credits.transactions ADD CONSTRAINT system_key_per_user UNIQUE (user_id, system_key);
-- The named service key that wrote an internal ledger row (refund, internal use).
ALTER TABLE credits.transactions ADD COLUMN caller text;
-- `reversal`: credits taken back after a Stripe refund or dispute, or paying off a debt.
ALTER TABLE credits.transactions DROP CONSTRAINT transactions_type_check;
ALTER TABLE credits.transactions ADD CONSTRAINT transactions_type_check
    CHECK (type IN ('purchase', 'usage', 'refund', 'gift', 'reversal'));

-- A renewal that failed for a reason other than missing credits is retried with backoff
-- and pauses the subscription after SYNC_RENEWAL_MAX_FAILURES runs.
ALTER TABLE credits.sync_subscriptions ADD COLUMN renewal_failures integer NOT NULL DEFAULT 0 CHECK (renewal_failures >= 0);
ALTER TABLE credits.sync_subscriptions ADD COLUMN renewal_retry_at timestamptz;

-- Credits a reversal could not take back because they were already spent. Later credits
-- pay it first; while it is positive the balance is 0.
ALTER TABLE credits.balances ADD COLUMN debt bigint NOT NULL DEFAULT 0 CHECK (debt >= 0);
ALTER TABLE credits.balances ADD CONSTRAINT debtors_have_no_balance CHECK (debt = 0 OR balance = 0);
-- Every change of a debt, append-only: + incurred (by a reversal), - settled (by the ledger
-- row `transaction_id`, a `reversal` of the same size). The audit sums it against `debt`.
CREATE TABLE credits.debts (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id text NOT NULL,
    amount bigint NOT NULL CHECK (amount <> 0),
    reason text NOT NULL,
    purchase_id uuid REFERENCES credits.purchases (id),
    transaction_id uuid REFERENCES credits.transactions (id),
    created_at timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX debts_by_user ON credits.debts (user_id, id);
CREATE TRIGGER debts_are_immutable BEFORE UPDATE OR DELETE ON credits.debts
    FOR EACH ROW EXECUTE FUNCTION credits.refuse_change();

-- Stripe refunds and disputes.
ALTER TABLE credits.purchases DROP CONSTRAINT purchases_status_check;
ALTER TABLE credits.purchases ADD CONSTRAINT purchases_status_check
    CHECK (status IN ('pending', 'completed', 'failed', 'partially_refunded', 'refunded', 'disputed'));
-- Credits taken back so far by refunds (cumulative), and by an open dispute.
ALTER TABLE credits.purchases ADD COLUMN refunded_credits bigint NOT NULL DEFAULT 0 CHECK (refunded_credits >= 0);
ALTER TABLE credits.purchases ADD COLUMN disputed_credits bigint NOT NULL DEFAULT 0 CHECK (disputed_credits >= 0);

