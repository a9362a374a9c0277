-- Money Stripe moved without us: refunds made in the dashboard and card disputes. They reach the
-- ledger as entries of their own kinds, so a seller's balance and an order's net always follow
-- what Stripe holds:
--   outside_refund           a partial refund made in Stripe, not attributed to lines (platform)
--   outside_refund_reversal  cancels those once a full refund reverses every line's sale
--   dispute_hold             a line's net held while its charge is disputed (and kept if lost)
--   dispute_release          gives the hold back when the dispute is won
ALTER TABLE ledger_entries DROP CONSTRAINT ledger_entries_kind_known;
ALTER TABLE ledger_entries ADD CONSTRAINT ledger_entries_kind_known
    CHECK (kind IN ('sale', 'platform_fee', 'refund', 'refund_fee_reversal', 'outside_refund',
                    'outside_refund_reversal', 'dispute_hold', 'dispute_release'));

-- Card disputes (chargebacks) of our charges, by Stripe's dispute id.
CREATE TABLE payment_disputes (
    id                  text PRIMARY KEY,            -- Stripe's dispute id (dp_...)
    order_id            uuid NOT NULL REFERENCES orders (id) ON DELETE CASCADE,
    amount_cents        bigint NOT NULL,
    currency            text NOT NULL,
    -- Stripe's dispute status: warning_needs_response, needs_response, under_review, won, lost, ...
    status              text NOT NULL,
    reason              text,
    closed_at           timestamptz,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX payment_disputes_order_idx ON payment_disputes (order_id);
CREATE TRIGGER payment_disputes_set_updated_at BEFORE UPDATE ON payment_disputes
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

-- Orders refunded in full before refunded_cents existed: their whole total went back.
UPDATE orders SET refunded_cents = total_cents WHERE status = 'refunded' AND refunded_cents = 0;

-- reconcile_payments reads the recently changed settled orders.
CREATE INDEX orders_settled_updated_idx ON orders (updated_at)
    WHERE status IN ('paid', 'partially_refunded', 'refunded');
