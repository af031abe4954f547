-- The Cloud Sync subscription (one row per user) and the notification outbox.
CREATE TABLE credits.sync_subscriptions (
    user_id text PRIMARY KEY,
    active boolean NOT NULL DEFAULT false,
    billing_interval text NOT NULL DEFAULT 'monthly' CHECK (billing_interval IN ('monthly', 'quarterly', 'yearly')),
    -- The price charged at the last activation or renewal.
    amount_charged bigint NOT NULL DEFAULT 0 CHECK (amount_charged >= 0),
    -- The billing anchor: renewals keep this day of month (clamped to short months).
    activated_at timestamptz,
    next_charge_at timestamptz,
    paused_at timestamptz,
    is_gifted boolean NOT NULL DEFAULT false,
    gifted_by text,
    gifted_at timestamptz,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT active_paid_rows_have_a_next_charge CHECK (NOT active OR is_gifted OR next_charge_at IS NOT NULL),
    CONSTRAINT gifted_rows_are_active CHECK (NOT is_gifted OR active)
);
CREATE INDEX sync_subscriptions_due ON credits.sync_subscriptions (next_charge_at)
    WHERE active AND NOT is_gifted;

-- Messages to other services, written in the transaction that causes them and delivered
-- by a background sender with retries: a message is never lost and, normally, sent once.
CREATE TABLE credits.outbox (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    destination text NOT NULL CHECK (destination IN ('notify')),
    path text NOT NULL,
    payload jsonb NOT NULL,
    attempts integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    last_error text,
    delivered_at timestamptz,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX outbox_pending ON credits.outbox (next_attempt_at) WHERE delivered_at IS NULL;
