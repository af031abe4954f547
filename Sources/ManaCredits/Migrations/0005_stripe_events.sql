-- Stripe webhook events, each processed at most once (the insert is part of the
-- transaction that applies the event).
CREATE TABLE credits.stripe_events (
    id text PRIMARY KEY,
    type text NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now()
);
