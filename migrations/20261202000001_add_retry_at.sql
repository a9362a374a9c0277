-- When a job or webhook event waiting for a retry is due. A failed delivery is retried after a
-- backoff; the sweeper re-pushes a waiting item only once its retry is overdue by the grace
-- period, so a retry whose task Redis lost is found within that grace, not after a fixed
-- worst-case delay, and a backoff in progress is never pre-empted.
ALTER TABLE jobs ADD COLUMN retry_at timestamptz;
ALTER TABLE webhook_events ADD COLUMN retry_at timestamptz;
