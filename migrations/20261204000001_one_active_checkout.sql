-- One cart, one order: at most one checkout job of a buyer is queued or running. Admission records
-- the job in one statement (ON CONFLICT DO NOTHING) instead of holding a per-buyer lock across the
-- stock gate, so this index is what settles two concurrent checkouts with different keys should the
-- gate's ticket lapse, and it is what admission reads the buyer's active checkout by.
CREATE UNIQUE INDEX jobs_one_active_checkout ON jobs (owner_id)
    WHERE kind = 'checkout' AND status IN ('queued', 'running');
-- It replaces the index that lookup used: one index less to write on every job insert and claim.
DROP INDEX jobs_owner_active_idx;
