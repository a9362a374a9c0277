-- Refunds by line: an order can be partly refunded (some lines back, others shipped or still to
-- ship), and the money refunded is tracked so refunds never add up to more than was paid.
ALTER TABLE orders DROP CONSTRAINT orders_status_known;
ALTER TABLE orders ADD CONSTRAINT orders_status_known
    CHECK (status IN ('pending_payment', 'paid', 'partially_refunded', 'expired', 'cancelled', 'refunded'));
ALTER TABLE orders ADD COLUMN refunded_cents bigint NOT NULL DEFAULT 0;
ALTER TABLE orders ADD CONSTRAINT orders_refunded_within_total
    CHECK (refunded_cents >= 0 AND refunded_cents <= total_cents);

-- Every refund of an order's money, whoever made it: the buyer or a seller (a job), the automatic
-- refund of a late payment, or Stripe's dashboard. Stripe's refund id is unique, so a refund
-- reported twice (our own call and its webhook, a redelivery) is recorded once.
CREATE TABLE order_refunds (
    id                  uuid PRIMARY KEY,
    order_id            uuid NOT NULL REFERENCES orders (id) ON DELETE CASCADE,
    stripe_refund_id    text CONSTRAINT order_refunds_stripe_refund_key UNIQUE,
    job_id              uuid CONSTRAINT order_refunds_job_key UNIQUE REFERENCES jobs (id) ON DELETE SET NULL,
    amount_cents        bigint NOT NULL CONSTRAINT order_refunds_amount_positive CHECK (amount_cents > 0),
    currency            text NOT NULL,
    -- The lines this refund gave back (empty: not attributed to lines, e.g. a dashboard refund).
    line_ids            uuid[] NOT NULL DEFAULT '{}',
    -- requested_by_buyer, requested_by_seller, late_payment or outside (made in Stripe directly).
    reason              text NOT NULL,
    created_at          timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX order_refunds_order_idx ON order_refunds (order_id);
