-- Expiry runs claim the orders they are about to expire, so that concurrent runs (several worker
-- replicas, a tick delivered twice) share the work instead of each cancelling every
-- PaymentIntent: the claim is a short lease, taken with `FOR UPDATE SKIP LOCKED` in a short
-- transaction, and the Stripe call happens after that transaction, with no row lock held.
-- Nullable and unused by older code, so it can be deployed before the code that reads it.
ALTER TABLE orders ADD COLUMN expiry_claimed_until timestamptz;
