//! Job handlers, one module per job, and [`register_all`], the one place they are wired up.
//!
//! Every job tracked in the `jobs` table travels as a [`JobTask`] (the row id) on its own queue;
//! its handler lives in `worker/src/jobs/<job>.rs` and adapts the delivery to the domain code in
//! `shared`, which claims the row in Postgres first (delivery is at-least-once) and caps attempts
//! there (apalis-redis ignores `max_attempts`, STACK.md pitfall 3).
//!
//! The worker factory runs again when the monitor restarts a failed worker, so it builds a fresh
//! worker (and unique name) every time.

mod checkout;
mod geocode_address;

use apalis::prelude::{Monitor, WorkerBuilder, WorkerBuilderExt};
use shared::{jobs, queue::JobTask};

use crate::{
    context::JobContext,
    queues::{QueueSelection, job_backend, worker_name},
};

/// Registers the worker for one `JobTask` queue when `$queues` selects it. A macro rather than a
/// function because apalis handler types are only nameable through their trait bounds.
macro_rules! register_job {
    ($monitor:expr, $ctx:expr, $queues:expr, $job:expr, $handler:path) => {
        if $queues.includes($job) {
            let ctx = $ctx.clone();
            $monitor.register(move |_restarts| {
                let queue = jobs::queue_name(&ctx.settings.redis_prefix, $job);
                WorkerBuilder::new(worker_name(&queue))
                    .backend(job_backend::<JobTask>(&ctx, $job))
                    .data(ctx.clone())
                    .concurrency(ctx.settings.worker.concurrency) // outermost: bounds all below
                    .catch_panic() // a panic must not kill the worker
                    .enable_tracing()
                    .build($handler)
            })
        } else {
            $monitor
        }
    };
}

/// Registers a worker for every job whose queue `queues` selects.
pub fn register_all(monitor: Monitor, ctx: &JobContext, queues: &QueueSelection) -> Monitor {
    let monitor = register_job!(monitor, ctx, queues, jobs::CHECKOUT, checkout::handle);
    register_job!(
        monitor,
        ctx,
        queues,
        jobs::GEOCODE_ADDRESS,
        geocode_address::handle
    )
}
