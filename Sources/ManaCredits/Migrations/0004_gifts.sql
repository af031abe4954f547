-- Gift codes: credits reserved from the creator, redeemed once by someone else.
CREATE TABLE gifts.gift_codes (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    code text NOT NULL UNIQUE CHECK (code = upper(code)),
    short_url text NOT NULL,
    creator_id text NOT NULL,
    creator_name text,
    total_credits bigint NOT NULL CHECK (total_credits BETWEEN 1 AND 10000),
    redeemed boolean NOT NULL DEFAULT false,
    type text NOT NULL CHECK (type IN ('simple', 'personalized')),
    status text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'depleted', 'expired', 'cancelled', 'refunded')),
    target_email text,
    message text CHECK (char_length(message) <= 500),
    expires_at timestamptz NOT NULL,
    reservation_transaction_id uuid REFERENCES credits.transactions (id),
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT personalized_codes_have_a_target CHECK (type = 'simple' OR target_email IS NOT NULL)
);
CREATE INDEX gift_codes_by_creator ON gifts.gift_codes (creator_id, created_at DESC);
CREATE INDEX gift_codes_expiring ON gifts.gift_codes (expires_at) WHERE status = 'active';
CREATE INDEX gift_codes_pending_by_email ON gifts.gift_codes (lower(target_email)) WHERE status = 'active' AND type = 'personalized';

CREATE TABLE gifts.gift_redemptions (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    gift_code_id uuid NOT NULL REFERENCES gifts.gift_codes (id),
    redeemer_user_id text NOT NULL,
    status text NOT NULL CHECK (status IN ('success', 'failed_wrong_user', 'failed_depleted', 'failed_expired', 'failed_already_claimed')),
    credits_received bigint NOT NULL DEFAULT 0,
    credit_transaction_id uuid REFERENCES credits.transactions (id),
    source_app_id text,
    created_at timestamptz NOT NULL DEFAULT now()
);
-- Single use, in the database itself: at most one successful redemption per code.
CREATE UNIQUE INDEX gift_redemptions_one_success ON gifts.gift_redemptions (gift_code_id) WHERE status = 'success';
CREATE INDEX gift_redemptions_by_redeemer ON gifts.gift_redemptions (redeemer_user_id, created_at DESC);
