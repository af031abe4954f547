-- Packages and purchases take the original service's column names and columns, so the
-- API shows the original's fields (priceEuroCents, stripePriceId, stripeCustomerId, ...)
-- and the import of the original's rows maps column to column.
ALTER TABLE credits.packages RENAME COLUMN price_cents TO price_euro_cents;
ALTER TABLE credits.packages RENAME CONSTRAINT packages_price_cents_check TO packages_price_euro_cents_check;
ALTER TABLE credits.packages ADD COLUMN stripe_price_id text UNIQUE;
ALTER TABLE credits.packages ADD COLUMN metadata jsonb;
ALTER TABLE credits.packages ADD COLUMN updated_at timestamptz NOT NULL DEFAULT now();

ALTER TABLE credits.purchases RENAME COLUMN amount_cents TO price_euro_cents;
ALTER TABLE credits.purchases RENAME CONSTRAINT purchases_amount_cents_check TO purchases_price_euro_cents_check;
-- The Stripe customer the PaymentIntent was created for.
ALTER TABLE credits.purchases ADD COLUMN stripe_customer_id text;
ALTER TABLE credits.purchases ADD COLUMN metadata jsonb;
