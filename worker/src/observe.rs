//! The layer every job worker runs its handler through: metrics, the Sentry transaction and
//! error report of each delivery, and the lease keeper of `jobs`-row tasks.
//!
//! * Metrics: `jobs_total{kind,outcome}`, `job_duration_seconds{kind}`, `jobs_in_flight{kind}`.
//! * Sentry: each delivery runs on its own hub, tagged `job.kind`, `job.id`, `job.attempt`,
//!   inside a transaction that continues the trace the job was created in (stored with the
//!   row). A delivery that fails is reported once: by the handler's own `ERROR` log if it wrote
//!   one, else by an event from here. A panic is reported by the panic integration on the
//!   same hub (this layer runs inside `catch_panic`).

use std::{
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::Instant,
};

use apalis::prelude::{AbortError, BoxDynError, Layer, Service, Task};
use sentry::{Hub, SentryFutureExt as _, protocol::SpanStatus};
use shared::{metrics, queue::Payload};
use sqlx::PgPool;
use uuid::Uuid;

use crate::lease::LeaseKeeper;

/// Observes the deliveries of job `kind`.
#[derive(Clone)]
pub struct ObserveLayer {
    kind: &'static str,
    pool: PgPool,
}

impl ObserveLayer {
    /// For the worker of job `kind`; `pool` reads trace contexts and extends leases.
    pub fn new(kind: &'static str, pool: PgPool) -> Self {
        // Creates the series (at 0) without resetting it when a failed worker is rebuilt.
        metrics::JOBS_IN_FLIGHT.add([kind], 0);
        Self { kind, pool }
    }
}

impl<S> Layer<S> for ObserveLayer {
    type Service = Observe<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Observe {
            inner,
            kind: self.kind,
            pool: self.pool.clone(),
        }
    }
}

/// The service [`ObserveLayer`] wraps a handler in.
#[derive(Clone)]
pub struct Observe<S> {
    inner: S,
    kind: &'static str,
    pool: PgPool,
}

impl<S, Args> Service<Task<Args>> for Observe<S>
where
    S: Service<Task<Args>, Error = BoxDynError>,
    S::Future: Send + 'static,
    S::Response: Send + 'static,
    Args: Payload,
{
    type Response = S::Response;
    type Error = BoxDynError;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, BoxDynError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, task: Task<Args>) -> Self::Future {
        let delivery = Delivery {
            kind: self.kind,
            row: task.args.job_row(),
            label: task.args.label(),
            // The lifecycle layer inside this one counts the attempt when it starts.
            attempt: task.ctx().attempt() + 1,
        };
        let pool = self.pool.clone();
        let handled = self.inner.call(task);
        let detached = Detached {
            kind: delivery.kind,
            label: delivery.label.clone(),
            running: true,
        };
        // The delivery runs as its own task: when apalis drops the worker (a Redis restart or a
        // FLUSHDB makes it fail, and the monitor starts a new one), the attempt in flight still
        // finishes and commits its outcome, instead of being cut off between two statements
        // and waiting for its lease to run out. Its task, never acknowledged, comes back as an
        // orphan and finds the job done.
        let running = tokio::spawn(async move {
            let stored_trace = delivery.stored_trace(&pool).await;
            let mut watch = Watch::start(&delivery, stored_trace.as_ref());
            let _lease = delivery.row.map(|id| LeaseKeeper::start(pool, id));
            let result = handled.bind_hub(watch.hub.clone()).await;
            watch.finish(&delivery, &result);
            result
        });
        Box::pin(async move {
            let mut detached = detached;
            let joined = running.await;
            detached.running = false;
            match joined {
                Ok(result) => result,
                // Re-raised here for `catch_panic` (outside this layer); the panic itself was
                // reported by the panic hook where it happened.
                Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
                Err(e) => Err(e.into()),
            }
        })
    }
}

/// Says so when a worker stops waiting for a delivery that is still running (the worker was
/// dropped, or its shutdown timeout ran out): the delivery goes on by itself.
struct Detached {
    kind: &'static str,
    label: String,
    running: bool,
}

impl Drop for Detached {
    fn drop(&mut self) {
        if self.running {
            tracing::warn!(
                job.kind = self.kind,
                job.id = %self.label,
                "job worker stopped during a delivery; the delivery finishes on its own"
            );
        }
    }
}

/// One delivery, as reported.
struct Delivery {
    kind: &'static str,
    row: Option<Uuid>,
    label: String,
    attempt: usize,
}

impl Delivery {
    /// The trace context stored with the job row; only looked up when Sentry is on.
    async fn stored_trace(&self, pool: &PgPool) -> Option<serde_json::Value> {
        let id = self.row?;
        Hub::main().client()?;
        let mut conn = pool.acquire().await.ok()?;
        match shared::db::jobs::trace_context(&mut conn, id).await {
            Ok(trace) => trace,
            Err(e) => {
                tracing::debug!(job.id = %id, error.message = %e, "no stored trace context");
                None
            }
        }
    }
}

/// Metrics and the Sentry transaction of one delivery. Dropped without [`Watch::finish`] only
/// when the handler panicked: then it records the panic.
struct Watch {
    kind: &'static str,
    hub: Arc<Hub>,
    transaction: Option<sentry::Transaction>,
    started: Instant,
}

impl Watch {
    fn start(delivery: &Delivery, stored_trace: Option<&serde_json::Value>) -> Self {
        metrics::JOBS_IN_FLIGHT.add([delivery.kind], 1);
        let hub = Arc::new(Hub::new_from_top(Hub::main()));
        let context =
            shared::telemetry::continue_trace(delivery.kind, "queue.process", stored_trace);
        let transaction = hub.start_transaction(context);
        transaction.set_tag("job.kind", delivery.kind);
        hub.configure_scope(|scope| {
            scope.set_span(Some(transaction.clone().into()));
            scope.set_tag("job.kind", delivery.kind);
            scope.set_tag("job.id", &delivery.label);
            scope.set_tag("job.attempt", delivery.attempt);
        });
        Self {
            kind: delivery.kind,
            hub,
            transaction: Some(transaction),
            started: Instant::now(),
        }
    }

    fn finish<R>(&mut self, delivery: &Delivery, result: &Result<R, BoxDynError>) {
        let (outcome, status) = match result {
            Ok(_) => ("ok", SpanStatus::Ok),
            Err(e) if e.downcast_ref::<AbortError>().is_some() => ("aborted", SpanStatus::Aborted),
            Err(_) => ("error", SpanStatus::InternalError),
        };
        if let Err(e) = result {
            // The handler logged it at ERROR (and so reported it) unless it chose not to, e.g.
            // for a retry it expects to succeed; report those failures here.
            if self.hub.last_event_id().is_none() {
                let mut event = sentry::event_from_error(e.as_ref());
                event.message = Some(format!(
                    "{} job {} failed: {e}",
                    delivery.kind, delivery.label
                ));
                self.hub.capture_event(event);
            }
        }
        self.record(outcome, status);
    }

    fn record(&mut self, outcome: &'static str, status: SpanStatus) {
        metrics::JOBS_IN_FLIGHT.add([self.kind], -1);
        metrics::JOBS.inc([self.kind, outcome]);
        metrics::JOB_DURATION.observe([self.kind], self.started.elapsed().as_secs_f64());
        if let Some(transaction) = self.transaction.take() {
            transaction.set_status(status);
            // Finishing applies the current hub's scope to the transaction.
            Hub::run(self.hub.clone(), || transaction.finish());
        }
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        if self.transaction.is_some() {
            self.record("panic", SpanStatus::InternalError);
        }
    }
}
