-- The trace a job was created in (the Sentry `sentry-trace` header of the request that made it),
-- so the worker's transaction for the job continues the same trace. Nullable and only written,
-- so older code keeps working: rows made by it, or with error reporting off, simply have none.
ALTER TABLE jobs ADD COLUMN trace_context jsonb;
