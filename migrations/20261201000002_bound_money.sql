-- Money stays within what Stripe can charge (99,999,999 minor units per order), and line
-- quantities within what the application ever accepts. NOT VALID: rows written before these
-- limits are left alone (they can no longer be checked out or changed without meeting them),
-- while every new or updated row is checked.
ALTER TABLE listings ADD CONSTRAINT listings_price_within_max_charge
    CHECK (price_cents <= 99999999) NOT VALID;
ALTER TABLE cart_lines ADD CONSTRAINT cart_lines_quantity_bounded
    CHECK (quantity <= 1000000) NOT VALID;
ALTER TABLE orders ADD CONSTRAINT orders_total_within_max_charge
    CHECK (total_cents <= 99999999) NOT VALID;
ALTER TABLE order_lines ADD CONSTRAINT order_lines_within_max_charge
    CHECK (unit_price_cents <= 99999999 AND quantity <= 1000000) NOT VALID;

-- A buyer's active checkout is looked up on every checkout (one cart, one order).
CREATE INDEX jobs_owner_active_idx ON jobs (owner_id, kind) WHERE status IN ('queued', 'running');
