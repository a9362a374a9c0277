//! Job handlers, one module per job, and [`register_all`], the one place they are wired up.
//!
//! No job is implemented yet. Each job issue adds:
//!
//! * the payload in `shared::jobs` (serde, ids only, e.g. `Checkout { order_id }`), so that the
//!   api pushes exactly what the worker reads;
//! * `worker/src/jobs/<job>.rs` with an idempotent handler (delivery is at-least-once):
//!   `async fn handle(job: Checkout, ctx: Data<JobContext>, attempt: Attempt) -> Result<T, JobError>`,
//!   returning `AbortError` for permanent failures and capping retries on `attempt.current()`,
//!   because apalis-redis ignores `max_attempts` (pitfall 3);
//! * one registration in [`register_all`]:
//!
//! ```text
//! let monitor = if queues.includes(jobs::CHECKOUT) {
//!     let ctx = ctx.clone();
//!     monitor.register(move |_restarts| {
//!         let queue = jobs::queue_name(&ctx.settings.redis_prefix, jobs::CHECKOUT);
//!         WorkerBuilder::new(worker_name(&queue))
//!             .backend(job_backend::<jobs::Checkout>(&ctx, jobs::CHECKOUT))
//!             .data(ctx.clone())
//!             .concurrency(ctx.settings.worker.concurrency) // outermost, bounds everything below
//!             .catch_panic()                                 // a panic must not kill the worker
//!             .enable_tracing()                              // innermost: one span per attempt
//!             .build(checkout::handle)
//!     })
//! } else {
//!     monitor
//! };
//! ```
//!
//! The factory runs again when the monitor restarts a failed worker, so it must build a fresh
//! worker (and name) every time. `worker/tests/worker/job_queue.rs` exercises this exact shape.

mod checkout;

use apalis::prelude::{Monitor, WorkerBuilder, WorkerBuilderExt};
use shared::{jobs, queue::JobTask};

use crate::{
    context::JobContext,
    queues::{QueueSelection, job_backend, worker_name},
};

/// Registers a worker for every job whose queue `queues` selects.
pub fn register_all(monitor: Monitor, ctx: &JobContext, queues: &QueueSelection) -> Monitor {
    let mut monitor = monitor;
    if queues.includes(jobs::CHECKOUT) {
        let ctx = ctx.clone();
        monitor = monitor.register(move |_restarts| {
            let queue = jobs::queue_name(&ctx.settings.redis_prefix, jobs::CHECKOUT);
            WorkerBuilder::new(worker_name(&queue))
                .backend(job_backend::<JobTask>(&ctx, jobs::CHECKOUT))
                .data(ctx.clone())
                .concurrency(ctx.settings.worker.concurrency) // outermost, bounds everything below
                .catch_panic() // a panic must not kill the worker
                .enable_tracing()
                .build(checkout::handle)
        });
    }
    monitor
}
