//! The one handler every job runs through, and [`register_all`], which gives every registered
//! job (`shared::jobs::visit_all`) its own worker.
//!
//! Each job's work lives in `shared::jobs`; here a delivery is adapted to it: the handler runs
//! the job with the process's `Services` and turns a failure into what apalis should do next,
//! following the job's [`Failure`] policy.
//!
//! The worker factory runs again when the monitor restarts a failed worker, so it builds a fresh
//! worker (and unique name) every time.

use apalis::prelude::{
    AbortError, Attempt, BoxDynError, Data, Monitor, WorkerBuilder, WorkerBuilderExt,
};
use shared::{
    jobs::{self, Failure, Job, Visit},
    queue::{self, Payload},
    telemetry::trace::{self, TraceId},
};
use tracing::Instrument as _;

use crate::{
    context::JobContext,
    observe::ObserveLayer,
    queues::{QueueSelection, job_backend, worker_name},
};

/// apalis-redis re-delivers a failed task at most this many times, whatever `max_attempts`
/// says; past it the task would sit in the dead set with a stale status.
pub(crate) const APALIS_DELIVERY_LIMIT: usize = 25;

/// Runs one delivery of job `J`, in the trace its task was pushed in (a new one for a task
/// that carries none, e.g. a tick): every log line of the delivery carries its `trace_id`, and
/// the tasks it pushes carry it on.
async fn handle<J: Job>(
    payload: J::Payload,
    ctx: Data<JobContext>,
    attempt: Attempt,
) -> Result<J::Output, BoxDynError> {
    let trace_id = payload.trace_id().unwrap_or_else(TraceId::random);
    let span = tracing::info_span!(
        "handle",
        trace_id = %trace_id,
        job.kind = J::NAME,
        job.id = %payload.label(),
        attempt = attempt.current(),
    );
    let run = async {
        match J::run(&ctx.services, payload).await {
            Ok(outcome) => {
                tracing::info!(?outcome, "job done");
                Ok(outcome)
            }
            Err(e) => Err(failed(J::NAME, J::failure(&e), e, &attempt)),
        }
    };
    trace::scope(trace_id, run.instrument(span)).await
}

/// What apalis is told about a failed delivery. A retry is an error (apalis delivers the task
/// again); giving up is an [`AbortError`]. The `jobs` row, or the webhook event's row, is still
/// pending then, so the sweeper re-pushes it once the outage is over.
fn failed<E>(kind: &'static str, failure: Failure, error: E, attempt: &Attempt) -> BoxDynError
where
    E: std::error::Error + Send + Sync + 'static,
{
    let last = attempt.current() >= APALIS_DELIVERY_LIMIT;
    match failure {
        Failure::Transient if !last => {
            tracing::warn!(job.kind = kind, error.message = %error, "job will be retried");
            error.into()
        }
        Failure::Unexpected if !last => {
            tracing::error!(job.kind = kind, error.message = %error, error.cause_chain = ?error, "job delivery failed; retrying");
            error.into()
        }
        Failure::NextTick => {
            tracing::error!(job.kind = kind, error.message = %error, error.cause_chain = ?error, "run failed; the next tick does the work");
            AbortError::new(error).into()
        }
        Failure::Transient | Failure::Unexpected => {
            tracing::error!(job.kind = kind, error.message = %error, error.cause_chain = ?error, "job delivery abandoned");
            AbortError::new(error).into()
        }
    }
}

/// Registers a worker for every job whose queue `queues` selects.
pub fn register_all(monitor: Monitor, ctx: &JobContext, queues: &QueueSelection) -> Monitor {
    let mut registrar = Registrar {
        monitor: Some(monitor),
        ctx,
        queues,
    };
    jobs::visit_all(&mut registrar);
    registrar
        .monitor
        .expect("the monitor is put back after each job")
}

/// Adds one worker per selected job to the monitor.
struct Registrar<'a> {
    monitor: Option<Monitor>,
    ctx: &'a JobContext,
    queues: &'a QueueSelection,
}

impl Visit for Registrar<'_> {
    fn job<J: Job>(&mut self) {
        if !self.queues.includes(J::NAME) {
            return;
        }
        let ctx = self.ctx.clone();
        let monitor = self.monitor.take().expect("a monitor");
        self.monitor = Some(monitor.register(move |_restarts| {
            let queue = queue::queue_name(&ctx.settings.redis_prefix, J::NAME);
            WorkerBuilder::new(worker_name(&queue))
                .backend(job_backend::<J::Payload>(&ctx, J::NAME))
                .data(ctx.clone())
                .concurrency(ctx.settings.worker.concurrency) // outermost: bounds all below
                .catch_panic() // a panic must not kill the worker
                // Inside catch_panic, so a panic is reported on this delivery's hub.
                .layer(ObserveLayer::new(J::NAME, ctx.pool.clone()))
                .enable_tracing()
                .build(handle::<J>)
        }));
    }
}
