//! Integration tests of the worker: the binary's start-up and shutdown, and the job-queue seam
//! that later jobs plug into. They need PostgreSQL and Redis on 127.0.0.1 (see `.ci/run`).

mod crash;
mod fleet;
mod helpers;
mod job_queue;
mod lifecycle;
mod metrics;
mod plans;
mod redis_restart;
mod retention;
mod sentry_trace;
mod sweeps;
mod trace_ids;
