-- PaymentIntents that Stripe reported as paid but that did not match their order (id, amount,
-- currency or order reference). Such a payment never marks an order paid: it is refunded and
-- recorded here for an operator to look at. One row per intent; repeated reports update it.
CREATE TABLE payment_mismatches (
    payment_intent_id   text PRIMARY KEY,
    order_id            uuid REFERENCES orders (id) ON DELETE SET NULL,
    -- Where it was noticed: webhook, expiry, cancel or late_refund.
    source              text NOT NULL CONSTRAINT payment_mismatches_source_known
                        CHECK (source IN ('webhook', 'expiry', 'cancel', 'late_refund')),
    -- [{field, expected, received}], see shared::payments::matching::Mismatch.
    mismatches          jsonb NOT NULL,
    event_id            text,
    refund_id           text,
    reports             integer NOT NULL DEFAULT 1,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX payment_mismatches_order_idx ON payment_mismatches (order_id);
CREATE TRIGGER payment_mismatches_set_updated_at BEFORE UPDATE ON payment_mismatches
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();
