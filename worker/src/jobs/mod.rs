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
mod expire_orders;
mod geocode_address;
mod payment_event;
mod prune_jobs;
mod purge_inactive;
mod reconcile_payments;
mod reconcile_stock;
mod refund_order;
mod requeue_stale;

use apalis::prelude::{AbortError, Attempt, BoxDynError, Monitor, WorkerBuilder, WorkerBuilderExt};
use shared::{
    jobs,
    queue::{JobTask, TickTask, WebhookEventTask},
};

use crate::{
    context::JobContext,
    observe::ObserveLayer,
    queues::{QueueSelection, job_backend, worker_name},
};

/// apalis-redis re-delivers a failed task at most this many times, whatever `max_attempts`
/// says (STACK.md, pitfall 3); past it the task would sit in the dead set with a stale status.
pub(crate) const APALIS_DELIVERY_LIMIT: usize = 25;

/// The error for a delivery that failed unexpectedly (database or Redis down): retried by apalis,
/// or aborted (and logged once as given up) when apalis would not deliver it again anyway. The
/// sweeper still finds the `jobs` row and re-pushes it once the outage is over.
pub(crate) fn retry_or_abandon<E>(kind: &str, error: E, attempt: &Attempt) -> BoxDynError
where
    E: std::error::Error + Send + Sync + 'static,
{
    if attempt.current() >= APALIS_DELIVERY_LIMIT {
        tracing::error!(job.kind = kind, error.message = %error, error.cause_chain = ?error, "job delivery abandoned");
        AbortError::new(error).into()
    } else {
        tracing::error!(job.kind = kind, error.message = %error, error.cause_chain = ?error, "job delivery failed; retrying");
        error.into()
    }
}

/// Registers the worker for one queue when `$queues` selects it; its tasks are `JobTask`s
/// unless another payload type is given (`TickTask` for periodic jobs, `WebhookEventTask` for
/// payment events). A macro rather than a function because apalis handler types are only
/// nameable through their trait bounds.
macro_rules! register_job {
    ($monitor:expr, $ctx:expr, $queues:expr, $job:expr, $handler:path) => {
        register_job!($monitor, $ctx, $queues, $job, JobTask, $handler)
    };
    ($monitor:expr, $ctx:expr, $queues:expr, $job:expr, $task:ty, $handler:path) => {
        if $queues.includes($job) {
            let ctx = $ctx.clone();
            $monitor.register(move |_restarts| {
                let queue = jobs::queue_name(&ctx.settings.redis_prefix, $job);
                WorkerBuilder::new(worker_name(&queue))
                    .backend(job_backend::<$task>(&ctx, $job))
                    .data(ctx.clone())
                    .concurrency(ctx.settings.worker.concurrency) // outermost: bounds all below
                    .catch_panic() // a panic must not kill the worker
                    // Inside catch_panic, so a panic is reported on this delivery's hub.
                    .layer(ObserveLayer::new($job, ctx.pool.clone()))
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
    let monitor = register_job!(
        monitor,
        ctx,
        queues,
        jobs::GEOCODE_ADDRESS,
        geocode_address::handle
    );
    let monitor = register_job!(
        monitor,
        ctx,
        queues,
        jobs::PAYMENT_EVENT,
        WebhookEventTask,
        payment_event::handle
    );
    let monitor = register_job!(
        monitor,
        ctx,
        queues,
        jobs::REFUND_ORDER,
        refund_order::handle
    );
    let monitor = register_job!(
        monitor,
        ctx,
        queues,
        jobs::EXPIRE_ORDERS,
        TickTask,
        expire_orders::handle
    );
    register_sweeps(monitor, ctx, queues)
}

/// The sweeps the scheduler triggers besides expiry: each tick is one `TickTask`.
fn register_sweeps(monitor: Monitor, ctx: &JobContext, queues: &QueueSelection) -> Monitor {
    let monitor = register_job!(
        monitor,
        ctx,
        queues,
        jobs::RECONCILE_STOCK,
        TickTask,
        reconcile_stock::handle
    );
    let monitor = register_job!(
        monitor,
        ctx,
        queues,
        jobs::REQUEUE_STALE,
        TickTask,
        requeue_stale::handle
    );
    let monitor = register_job!(
        monitor,
        ctx,
        queues,
        jobs::PURGE_INACTIVE,
        TickTask,
        purge_inactive::handle
    );
    let monitor = register_job!(
        monitor,
        ctx,
        queues,
        jobs::PRUNE_JOBS,
        TickTask,
        prune_jobs::handle
    );
    register_job!(
        monitor,
        ctx,
        queues,
        jobs::RECONCILE_PAYMENTS,
        TickTask,
        reconcile_payments::handle
    )
}
