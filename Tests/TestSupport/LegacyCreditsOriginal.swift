import HTTPKit
import PostgresNIO

/// The original Bun mana-credits database as `drizzle-kit push` builds it (docs:
/// ../shared/spec/legacy-schemas.md §2): enums in `public`, tables in `credits` and `gifts`,
/// int4 amounts, no CHECKs, `<table>_<column>_idx` indexes and `_unique` constraints.
extension LegacyOriginals {
    package static let creditsDDL = [
        "CREATE TYPE public.transaction_type AS ENUM ('purchase', 'usage', 'refund', 'gift')",
        "CREATE TYPE public.transaction_status AS ENUM ('pending', 'completed', 'failed', 'cancelled')",
        "CREATE TYPE public.gift_code_type AS ENUM ('simple', 'personalized')",
        "CREATE TYPE public.gift_code_status AS ENUM ('active', 'depleted', 'expired', 'cancelled', 'refunded')",
        "CREATE TYPE public.gift_redemption_status AS ENUM ('success', 'failed_wrong_user', 'failed_depleted', 'failed_expired', 'failed_already_claimed')",
        "CREATE TYPE public.sync_billing_interval AS ENUM ('monthly', 'quarterly', 'yearly')",
        "CREATE SCHEMA credits",
        "CREATE SCHEMA gifts",
        """
        CREATE TABLE credits.stripe_customers (
            user_id text PRIMARY KEY NOT NULL, stripe_customer_id text NOT NULL, email text,
            created_at timestamp with time zone DEFAULT now() NOT NULL, updated_at timestamp with time zone DEFAULT now() NOT NULL,
            CONSTRAINT stripe_customers_stripe_customer_id_unique UNIQUE (stripe_customer_id))
        """,
        """
        CREATE TABLE credits.balances (
            user_id text PRIMARY KEY NOT NULL, balance integer DEFAULT 0 NOT NULL, total_earned integer DEFAULT 0 NOT NULL,
            total_spent integer DEFAULT 0 NOT NULL, version integer DEFAULT 0 NOT NULL,
            created_at timestamp with time zone DEFAULT now() NOT NULL, updated_at timestamp with time zone DEFAULT now() NOT NULL)
        """,
        """
        CREATE TABLE credits.transactions (
            id uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL, user_id text NOT NULL, type transaction_type NOT NULL,
            status transaction_status DEFAULT 'pending' NOT NULL, amount integer NOT NULL, balance_before integer NOT NULL,
            balance_after integer NOT NULL, app_id text NOT NULL, description text NOT NULL, metadata jsonb, idempotency_key text,
            created_at timestamp with time zone DEFAULT now() NOT NULL, completed_at timestamp with time zone,
            CONSTRAINT transactions_idempotency_key_unique UNIQUE (idempotency_key))
        """,
        "CREATE INDEX transactions_user_id_idx ON credits.transactions USING btree (user_id)",
        "CREATE INDEX transactions_app_id_idx ON credits.transactions USING btree (app_id)",
        "CREATE INDEX transactions_created_at_idx ON credits.transactions USING btree (created_at)",
        "CREATE INDEX transactions_idempotency_key_idx ON credits.transactions USING btree (idempotency_key)",
        """
        CREATE TABLE credits.packages (
            id uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL, name text NOT NULL, description text, credits integer NOT NULL,
            price_euro_cents integer NOT NULL, stripe_price_id text, active boolean DEFAULT true NOT NULL, sort_order integer DEFAULT 0 NOT NULL,
            metadata jsonb, created_at timestamp with time zone DEFAULT now() NOT NULL, updated_at timestamp with time zone DEFAULT now() NOT NULL,
            CONSTRAINT packages_stripe_price_id_unique UNIQUE (stripe_price_id))
        """,
        """
        CREATE TABLE credits.purchases (
            id uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL, user_id text NOT NULL, package_id uuid, credits integer NOT NULL,
            price_euro_cents integer NOT NULL, stripe_payment_intent_id text, stripe_customer_id text,
            status transaction_status DEFAULT 'pending' NOT NULL, metadata jsonb,
            created_at timestamp with time zone DEFAULT now() NOT NULL, completed_at timestamp with time zone,
            CONSTRAINT purchases_stripe_payment_intent_id_unique UNIQUE (stripe_payment_intent_id))
        """,
        "ALTER TABLE credits.purchases ADD CONSTRAINT purchases_package_id_packages_id_fk FOREIGN KEY (package_id) REFERENCES credits.packages(id)",
        "CREATE INDEX purchases_user_id_idx ON credits.purchases USING btree (user_id)",
        "CREATE INDEX purchases_stripe_payment_intent_id_idx ON credits.purchases USING btree (stripe_payment_intent_id)",
        """
        CREATE TABLE credits.usage_stats (
            id uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL, user_id text NOT NULL, app_id text NOT NULL,
            credits_used integer NOT NULL, date timestamp with time zone NOT NULL, metadata jsonb)
        """,
        "CREATE INDEX usage_stats_user_id_date_idx ON credits.usage_stats USING btree (user_id, date)",
        "CREATE INDEX usage_stats_app_id_date_idx ON credits.usage_stats USING btree (app_id, date)",
        """
        CREATE TABLE credits.sync_subscriptions (
            user_id text PRIMARY KEY NOT NULL, active boolean DEFAULT false NOT NULL,
            billing_interval sync_billing_interval DEFAULT 'monthly' NOT NULL, amount_charged integer DEFAULT 30 NOT NULL,
            activated_at timestamp with time zone, next_charge_at timestamp with time zone, paused_at timestamp with time zone,
            gifted_at timestamp with time zone, is_gifted boolean DEFAULT false NOT NULL, gifted_by text,
            created_at timestamp with time zone DEFAULT now() NOT NULL, updated_at timestamp with time zone DEFAULT now() NOT NULL)
        """,
        """
        CREATE TABLE gifts.gift_codes (
            id uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL, code text NOT NULL, short_url text, creator_id text NOT NULL,
            creator_name text, total_credits integer NOT NULL, redeemed integer DEFAULT 0 NOT NULL,
            type gift_code_type DEFAULT 'simple' NOT NULL, status gift_code_status DEFAULT 'active' NOT NULL, target_email text,
            message text, expires_at timestamp with time zone, reservation_transaction_id uuid,
            created_at timestamp with time zone DEFAULT now() NOT NULL, updated_at timestamp with time zone DEFAULT now() NOT NULL,
            CONSTRAINT gift_codes_code_unique UNIQUE (code))
        """,
        "CREATE INDEX gift_codes_code_idx ON gifts.gift_codes USING btree (code)",
        "CREATE INDEX gift_codes_creator_idx ON gifts.gift_codes USING btree (creator_id)",
        "CREATE INDEX gift_codes_status_idx ON gifts.gift_codes USING btree (status)",
        "CREATE INDEX gift_codes_expires_at_idx ON gifts.gift_codes USING btree (expires_at)",
        """
        CREATE TABLE gifts.gift_redemptions (
            id uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL, gift_code_id uuid NOT NULL, redeemer_user_id text NOT NULL,
            status gift_redemption_status NOT NULL, credits_received integer DEFAULT 0 NOT NULL, credit_transaction_id uuid,
            source_app_id text, created_at timestamp with time zone DEFAULT now() NOT NULL)
        """,
        """
        ALTER TABLE gifts.gift_redemptions ADD CONSTRAINT gift_redemptions_gift_code_id_gift_codes_id_fk
            FOREIGN KEY (gift_code_id) REFERENCES gifts.gift_codes(id) ON DELETE CASCADE
        """,
        "CREATE INDEX gift_redemptions_gift_code_idx ON gifts.gift_redemptions USING btree (gift_code_id)",
        "CREATE INDEX gift_redemptions_redeemer_idx ON gifts.gift_redemptions USING btree (redeemer_user_id)",
        "CREATE INDEX gift_redemptions_status_idx ON gifts.gift_redemptions USING btree (status)",
    ]

    /// A fresh database holding the original mana-credits tables (empty).
    package static func creditsDatabase() async throws -> DatabaseURL {
        let url = try await PostgresCluster.shared.createDatabase(prefix: "orig_credits")
        try await run(creditsDDL, on: url)
        return url
    }

    /// Fills an original credits database the way the Bun service writes it: per user, one
    /// purchase of 1,000 credits (with its package and purchase row), then `perUser - 1`
    /// usage debits in chain order (one usage_stats row each) and the balance row.
    package static func fillCredits(_ url: DatabaseURL, users: Int, perUser: Int) async throws {
        try await run(
            [
                "INSERT INTO credits.packages (id, name, credits, price_euro_cents) VALUES ('00000000-0000-0000-0000-00000000b001', 'Starter', 1000, 999)",
                """
                INSERT INTO credits.transactions (id, user_id, type, status, amount, balance_before, balance_after, app_id, description,
                    metadata, idempotency_key, created_at, completed_at)
                SELECT md5('t' || u || '/' || i)::uuid, 'user' || u, (CASE WHEN i = 1 THEN 'purchase' ELSE 'usage' END)::transaction_type,
                    'completed', a, s - a, s, CASE WHEN i = 1 THEN 'stripe' ELSE 'app' || (i % 3) END, 'row ' || i,
                    CASE WHEN i = 1 THEN jsonb_build_object('purchaseId', md5('p' || u)::uuid, 'paymentIntentId', 'pi_' || u) END,
                    CASE WHEN i % 4 = 0 THEN 'key-' || u || '-' || i END, ts, ts
                FROM (
                    SELECT u, i, a, sum(a) OVER (PARTITION BY u ORDER BY i) AS s,
                        timestamptz '2024-01-01 00:00:00+00' + u * interval '1 second' + i * interval '1 millisecond' AS ts
                    FROM (SELECT u, i, CASE WHEN i = 1 THEN 1000 ELSE -(i % 7 + 1) END AS a
                          FROM generate_series(1, \(users)) u, generate_series(1, \(perUser)) i) x) y
                """,
                """
                INSERT INTO credits.purchases (id, user_id, package_id, credits, price_euro_cents, stripe_payment_intent_id, stripe_customer_id,
                    status, created_at, completed_at)
                SELECT md5('p' || u)::uuid, 'user' || u, '00000000-0000-0000-0000-00000000b001', 1000, 999, 'pi_' || u, 'cus_' || u, 'completed',
                    timestamptz '2024-01-01 00:00:00+00' + u * interval '1 second', timestamptz '2024-01-01 00:00:00+00' + u * interval '1 second'
                FROM generate_series(1, \(users)) u
                """,
                """
                INSERT INTO credits.usage_stats (user_id, app_id, credits_used, date)
                SELECT user_id, app_id, -amount, date_trunc('day', created_at) FROM credits.transactions WHERE type = 'usage'
                """,
                """
                INSERT INTO credits.balances (user_id, balance, total_earned, total_spent, version, created_at, updated_at)
                SELECT user_id, sum(amount), sum(amount) FILTER (WHERE amount > 0), coalesce(-sum(amount) FILTER (WHERE amount < 0), 0),
                    count(*), min(created_at), max(created_at)
                FROM credits.transactions GROUP BY user_id
                """,
                "ANALYZE",
            ], on: url)
    }
}
