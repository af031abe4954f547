-- The credit ledger. The invariants of the spec hold in the database itself:
-- balance >= 0, total_earned - total_spent = balance, amount <> 0,
-- balance_after - balance_before = amount, idempotency keys unique per user,
-- and transactions are immutable (no UPDATE or DELETE).
CREATE TABLE credits.balances (
    user_id text PRIMARY KEY,
    balance bigint NOT NULL DEFAULT 0 CHECK (balance >= 0),
    total_earned bigint NOT NULL DEFAULT 0 CHECK (total_earned >= 0),
    total_spent bigint NOT NULL DEFAULT 0 CHECK (total_spent >= 0),
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT balance_is_earned_minus_spent CHECK (total_earned - total_spent = balance)
);

CREATE TABLE credits.transactions (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    seq bigint GENERATED ALWAYS AS IDENTITY UNIQUE,
    user_id text NOT NULL,
    type text NOT NULL CHECK (type IN ('purchase', 'usage', 'refund', 'gift')),
    status text NOT NULL DEFAULT 'completed' CHECK (status IN ('pending', 'completed', 'failed')),
    amount bigint NOT NULL CHECK (amount <> 0),
    balance_before bigint NOT NULL CHECK (balance_before >= 0),
    balance_after bigint NOT NULL CHECK (balance_after >= 0),
    app_id text NOT NULL,
    description text NOT NULL,
    metadata jsonb,
    idempotency_key text,
    created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    completed_at timestamptz,
    CONSTRAINT after_minus_before_is_amount CHECK (balance_after - balance_before = amount),
    CONSTRAINT idempotency_key_per_user UNIQUE (user_id, idempotency_key)
);
CREATE INDEX transactions_by_user ON credits.transactions (user_id, seq DESC);

CREATE FUNCTION credits.refuse_change() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'credits.transactions is append-only';
END
$$ LANGUAGE plpgsql;

CREATE TRIGGER transactions_are_immutable BEFORE UPDATE OR DELETE ON credits.transactions
    FOR EACH ROW EXECUTE FUNCTION credits.refuse_change();

CREATE TABLE credits.packages (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name text NOT NULL UNIQUE,
    description text NOT NULL DEFAULT '',
    credits bigint NOT NULL CHECK (credits > 0),
    price_cents bigint NOT NULL CHECK (price_cents > 0),
    currency text NOT NULL DEFAULT 'eur',
    active boolean NOT NULL DEFAULT true,
    sort_order integer NOT NULL DEFAULT 0,
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE credits.purchases (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id text NOT NULL,
    package_id uuid NOT NULL REFERENCES credits.packages (id),
    credits bigint NOT NULL CHECK (credits > 0),
    amount_cents bigint NOT NULL CHECK (amount_cents > 0),
    currency text NOT NULL DEFAULT 'eur',
    status text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'completed', 'failed')),
    stripe_payment_intent_id text UNIQUE,
    transaction_id uuid REFERENCES credits.transactions (id),
    created_at timestamptz NOT NULL DEFAULT now(),
    completed_at timestamptz
);
CREATE INDEX purchases_by_user ON credits.purchases (user_id, created_at DESC);

CREATE TABLE credits.usage_stats (
    user_id text NOT NULL,
    app_id text NOT NULL,
    day date NOT NULL,
    credits_used bigint NOT NULL DEFAULT 0 CHECK (credits_used >= 0),
    transactions integer NOT NULL DEFAULT 0,
    PRIMARY KEY (user_id, app_id, day)
);

CREATE TABLE credits.stripe_customers (
    user_id text PRIMARY KEY,
    stripe_customer_id text NOT NULL UNIQUE,
    created_at timestamptz NOT NULL DEFAULT now()
);
