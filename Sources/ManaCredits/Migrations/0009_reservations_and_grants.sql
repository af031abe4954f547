-- Two-phase reservations (reserve → commit | refund | expiry) and idempotent grants
-- (docs/credits.md, "Reservations and grants"; spec: reservations.md §6–7).
--
-- The ledger stays equal to the balance while a reservation is open: reserving writes a
-- `usage` row with status `pending` and the real balances before and after; committing
-- completes it; a refund or the expiry cancels it and writes a `refund` row of the same
-- size. The credits held are kept on the balance row (`reserved`), so that
-- total_earned - total_spent - reserved = balance.

ALTER TABLE credits.balances ADD COLUMN reserved bigint NOT NULL DEFAULT 0 CHECK (reserved >= 0);
ALTER TABLE credits.balances DROP CONSTRAINT balance_is_earned_minus_spent;
ALTER TABLE credits.balances ADD CONSTRAINT balance_is_earned_minus_spent_minus_reserved
    CHECK (total_earned - total_spent - reserved = balance);

ALTER TABLE credits.transactions DROP CONSTRAINT transactions_type_check;
ALTER TABLE credits.transactions ADD CONSTRAINT transactions_type_check
    CHECK (type IN ('purchase', 'usage', 'refund', 'gift', 'reversal', 'grant'));
ALTER TABLE credits.transactions DROP CONSTRAINT transactions_status_check;
ALTER TABLE credits.transactions ADD CONSTRAINT transactions_status_check
    CHECK (status IN ('pending', 'completed', 'failed', 'cancelled'));

CREATE TABLE credits.reservations (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id text NOT NULL,
    amount bigint NOT NULL CHECK (amount > 0),
    reason text NOT NULL,
    status text NOT NULL DEFAULT 'reserved' CHECK (status IN ('reserved', 'committed', 'refunded', 'expired')),
    idempotency_key text,
    -- The hold: the pending ledger row written when the credits were reserved.
    transaction_id uuid NOT NULL UNIQUE REFERENCES credits.transactions (id),
    -- The refund row written when the reservation was refunded or expired.
    refund_transaction_id uuid UNIQUE REFERENCES credits.transactions (id),
    -- What the caller said at commit (the ledger row keeps the reason it was reserved for).
    commit_description text,
    caller text,
    created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    expires_at timestamptz NOT NULL,
    resolved_at timestamptz,
    CONSTRAINT reservation_key_per_user UNIQUE (user_id, idempotency_key),
    CONSTRAINT resolved_when_not_reserved CHECK ((status = 'reserved') = (resolved_at IS NULL)),
    CONSTRAINT refunded_with_a_refund_row CHECK ((status IN ('refunded', 'expired')) = (refund_transaction_id IS NOT NULL))
);
CREATE INDEX reservations_by_user ON credits.reservations (user_id, created_at DESC);
CREATE INDEX reservations_open_by_expiry ON credits.reservations (expires_at) WHERE status = 'reserved';

-- Ledger rows stay immutable except for one transition: a pending row becomes completed or
-- cancelled (with completed_at). Nothing else of any row changes, and no row goes away.
CREATE OR REPLACE FUNCTION credits.guard_transaction_change() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND OLD.status = 'pending' AND NEW.status IN ('completed', 'cancelled')
        AND (to_jsonb(NEW) - 'status' - 'completed_at') = (to_jsonb(OLD) - 'status' - 'completed_at') THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'credits.transactions is append-only (a pending row may only become completed or cancelled)';
END
$$ LANGUAGE plpgsql;

DROP TRIGGER transactions_are_immutable ON credits.transactions;
CREATE TRIGGER transactions_are_immutable BEFORE UPDATE OR DELETE ON credits.transactions
    FOR EACH ROW EXECUTE FUNCTION credits.guard_transaction_change();
