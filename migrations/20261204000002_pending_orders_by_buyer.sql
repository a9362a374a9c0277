-- A buyer's orders awaiting payment, counted by checkout admission's read and by its job insert
-- (`MAX_UNPAID_ORDERS`) on every checkout. Without this index PostgreSQL intersected the buyer's
-- orders with every pending order of the marketplace (a bitmap of `orders_pending_expiry_idx`),
-- so each admission read grew with the number of pending orders; now it reads the buyer's own
-- entries. Only pending orders are in it, so it costs one entry per order, written at checkout.
CREATE INDEX orders_buyer_pending_idx ON orders (buyer_id) WHERE status = 'pending_payment';
