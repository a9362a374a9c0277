-- Initial schema: users and tokens, listings, carts, addresses, orders, jobs, webhook events and
-- the seller ledger. Money is integer minor units with a lowercase ISO currency code.

CREATE OR REPLACE FUNCTION set_updated_at() RETURNS trigger AS $$
BEGIN
    NEW.updated_at = now();
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;

-- Users -----------------------------------------------------------------------------------------
CREATE TABLE users (
    id              uuid PRIMARY KEY,
    username        text NOT NULL,
    email           text NOT NULL,
    password_hash   text NOT NULL,
    display_name    text NOT NULL DEFAULT '',
    bio             text NOT NULL DEFAULT '',
    -- Bumped on password change and deletion; access tokens carry it, so old ones stop working.
    token_version   integer NOT NULL DEFAULT 0,
    deleted_at      timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);
-- Usernames and emails are unique case-insensitively, also across soft-deleted accounts until
-- they are purged (a deleted name must not be taken over while its orders still refer to it).
CREATE UNIQUE INDEX users_username_key ON users (lower(username));
CREATE UNIQUE INDEX users_email_key ON users (lower(email));
CREATE INDEX users_deleted_at_idx ON users (deleted_at) WHERE deleted_at IS NOT NULL;
CREATE TRIGGER users_set_updated_at BEFORE UPDATE ON users
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

-- Refresh tokens: each login starts a family; each refresh rotates within it. Presenting a token
-- that was already rotated revokes the whole family (reuse detection).
CREATE TABLE refresh_token_families (
    id              uuid PRIMARY KEY,
    user_id         uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    revoked_at      timestamptz,
    revoked_reason  text,
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX refresh_token_families_user_idx ON refresh_token_families (user_id);

CREATE TABLE refresh_tokens (
    id              uuid PRIMARY KEY,
    family_id       uuid NOT NULL REFERENCES refresh_token_families (id) ON DELETE CASCADE,
    -- SHA-256 of the opaque token: a leaked table does not leak usable tokens.
    token_hash      bytea NOT NULL CONSTRAINT refresh_tokens_hash_key UNIQUE,
    expires_at      timestamptz NOT NULL,
    used_at         timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX refresh_tokens_family_idx ON refresh_tokens (family_id);

-- Listings --------------------------------------------------------------------------------------
CREATE TABLE listings (
    id              uuid PRIMARY KEY,
    seller_id       uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    title           text NOT NULL,
    description     text NOT NULL DEFAULT '',
    price_cents     bigint NOT NULL CONSTRAINT listings_price_positive CHECK (price_cents >= 1),
    currency        text NOT NULL DEFAULT 'usd' CONSTRAINT listings_currency_iso CHECK (currency ~ '^[a-z]{3}$'),
    quantity        integer NOT NULL CONSTRAINT listings_quantity_nonnegative CHECK (quantity >= 0),
    reserved        integer NOT NULL DEFAULT 0,
    is_active       boolean NOT NULL DEFAULT true,
    deleted_at      timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    -- The no-oversell invariant, enforced by the database itself.
    CONSTRAINT listings_reserved_within_quantity CHECK (reserved >= 0 AND reserved <= quantity)
);
CREATE INDEX listings_active_created_idx ON listings (created_at, id) WHERE is_active;
CREATE INDEX listings_active_price_idx ON listings (price_cents, id) WHERE is_active;
CREATE INDEX listings_seller_idx ON listings (seller_id, created_at);
CREATE INDEX listings_deleted_at_idx ON listings (deleted_at) WHERE deleted_at IS NOT NULL;
CREATE TRIGGER listings_set_updated_at BEFORE UPDATE ON listings
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

-- Carts -----------------------------------------------------------------------------------------
CREATE TABLE carts (
    user_id         uuid PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE TRIGGER carts_set_updated_at BEFORE UPDATE ON carts
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

CREATE TABLE cart_lines (
    user_id         uuid NOT NULL REFERENCES carts (user_id) ON DELETE CASCADE,
    listing_id      uuid NOT NULL REFERENCES listings (id) ON DELETE CASCADE,
    quantity        integer NOT NULL CONSTRAINT cart_lines_quantity_positive CHECK (quantity >= 1),
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT cart_lines_pkey PRIMARY KEY (user_id, listing_id)
);
CREATE INDEX cart_lines_listing_idx ON cart_lines (listing_id);
CREATE TRIGGER cart_lines_set_updated_at BEFORE UPDATE ON cart_lines
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

-- Addresses -------------------------------------------------------------------------------------
CREATE TABLE addresses (
    id                  uuid PRIMARY KEY,
    user_id             uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    line1               text NOT NULL,
    line2               text,
    city                text NOT NULL,
    region              text,
    postal_code         text NOT NULL,
    country             text NOT NULL CONSTRAINT addresses_country_iso CHECK (country ~ '^[A-Z]{2}$'),
    status              text NOT NULL DEFAULT 'pending' CONSTRAINT addresses_status_known
                        CHECK (status IN ('pending', 'verified', 'needs_review', 'invalid', 'failed')),
    formatted_address   text,
    latitude            double precision,
    longitude           double precision,
    place_id            text,
    location_type       text,
    components          jsonb,
    error               text,
    deleted_at          timestamptz,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX addresses_user_idx ON addresses (user_id, created_at);
CREATE TRIGGER addresses_set_updated_at BEFORE UPDATE ON addresses
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

-- Jobs: the user-visible record of background work; Redis only carries the job id. -------------
CREATE TABLE jobs (
    id                  uuid PRIMARY KEY,
    kind                text NOT NULL,
    owner_id            uuid REFERENCES users (id) ON DELETE SET NULL,
    status              text NOT NULL DEFAULT 'queued' CONSTRAINT jobs_status_known
                        CHECK (status IN ('queued', 'running', 'succeeded', 'failed')),
    attempts            integer NOT NULL DEFAULT 0,
    max_attempts        integer NOT NULL DEFAULT 5,
    payload             jsonb NOT NULL DEFAULT '{}'::jsonb,
    result              jsonb,
    error_code          text,
    error_message       text,
    lease_expires_at    timestamptz,
    idempotency_key     text,
    -- Hash of the request that created the job: the same key with a different body is refused.
    request_fingerprint text,
    finished_at         timestamptz,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT jobs_owner_kind_idempotency_key UNIQUE (owner_id, kind, idempotency_key)
);
CREATE INDEX jobs_pending_idx ON jobs (status, updated_at) WHERE status IN ('queued', 'running');
CREATE INDEX jobs_finished_idx ON jobs (finished_at) WHERE finished_at IS NOT NULL;
CREATE TRIGGER jobs_set_updated_at BEFORE UPDATE ON jobs
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

-- Orders keep snapshots of what was bought, so they survive later edits and purges. -------------
CREATE TABLE orders (
    id                  uuid PRIMARY KEY,
    buyer_id            uuid REFERENCES users (id) ON DELETE SET NULL,
    buyer_username      text NOT NULL,
    status              text NOT NULL CONSTRAINT orders_status_known
                        CHECK (status IN ('pending_payment', 'paid', 'expired', 'cancelled', 'refunded')),
    status_reason       text,
    total_cents         bigint NOT NULL CONSTRAINT orders_total_nonnegative CHECK (total_cents >= 0),
    currency            text NOT NULL CONSTRAINT orders_currency_iso CHECK (currency ~ '^[a-z]{3}$'),
    shipping_address    jsonb NOT NULL,
    payment_intent_id   text CONSTRAINT orders_payment_intent_key UNIQUE,
    client_secret       text,
    refund_id           text,
    checkout_job_id     uuid CONSTRAINT orders_checkout_job_key UNIQUE REFERENCES jobs (id) ON DELETE SET NULL,
    expires_at          timestamptz NOT NULL,
    paid_at             timestamptz,
    closed_at           timestamptz,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX orders_buyer_idx ON orders (buyer_id, created_at);
CREATE INDEX orders_pending_expiry_idx ON orders (expires_at) WHERE status = 'pending_payment';
CREATE TRIGGER orders_set_updated_at BEFORE UPDATE ON orders
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

CREATE TABLE order_lines (
    id                  uuid PRIMARY KEY,
    order_id            uuid NOT NULL REFERENCES orders (id) ON DELETE CASCADE,
    listing_id          uuid REFERENCES listings (id) ON DELETE SET NULL,
    seller_id           uuid REFERENCES users (id) ON DELETE SET NULL,
    seller_username     text NOT NULL,
    title               text NOT NULL,
    unit_price_cents    bigint NOT NULL CONSTRAINT order_lines_price_positive CHECK (unit_price_cents >= 1),
    currency            text NOT NULL,
    quantity            integer NOT NULL CONSTRAINT order_lines_quantity_positive CHECK (quantity >= 1),
    status              text NOT NULL DEFAULT 'awaiting_payment' CONSTRAINT order_lines_status_known
                        CHECK (status IN ('awaiting_payment', 'awaiting_shipment', 'shipped', 'cancelled', 'refunded')),
    tracking_code       text,
    shipped_at          timestamptz,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX order_lines_order_idx ON order_lines (order_id);
CREATE INDEX order_lines_seller_idx ON order_lines (seller_id, created_at);
CREATE INDEX order_lines_listing_idx ON order_lines (listing_id);
CREATE TRIGGER order_lines_set_updated_at BEFORE UPDATE ON order_lines
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

-- Stripe webhook events: stored before they are acknowledged, processed by a job. ---------------
CREATE TABLE webhook_events (
    id                  text PRIMARY KEY,            -- Stripe's event id (evt_...)
    event_type          text NOT NULL,
    object_id           text,
    payload             jsonb NOT NULL,
    attempts            integer NOT NULL DEFAULT 0,
    processed_at        timestamptz,
    error               text,
    received_at         timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX webhook_events_unprocessed_idx ON webhook_events (received_at) WHERE processed_at IS NULL;
CREATE TRIGGER webhook_events_set_updated_at BEFORE UPDATE ON webhook_events
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

-- Seller ledger: append-only money movements; a seller's balance is the sum. -------------------
CREATE TABLE ledger_entries (
    id                  uuid PRIMARY KEY,
    seller_id           uuid REFERENCES users (id) ON DELETE SET NULL,
    order_id            uuid NOT NULL REFERENCES orders (id) ON DELETE CASCADE,
    order_line_id       uuid REFERENCES order_lines (id) ON DELETE CASCADE,
    kind                text NOT NULL CONSTRAINT ledger_entries_kind_known
                        CHECK (kind IN ('sale', 'platform_fee', 'refund', 'refund_fee_reversal')),
    amount_cents        bigint NOT NULL,
    currency            text NOT NULL,
    created_at          timestamptz NOT NULL DEFAULT now(),
    -- One entry of each kind per line: applying an event twice cannot credit twice.
    CONSTRAINT ledger_entries_line_kind_key UNIQUE (order_line_id, kind)
);
CREATE INDEX ledger_entries_seller_idx ON ledger_entries (seller_id, created_at);
