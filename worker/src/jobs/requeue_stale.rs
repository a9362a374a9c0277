//! The `requeue_stale` job: one scheduler tick, adapted to `shared::sweep::requeue_stale`.

use apalis::prelude::{AbortError, BoxDynError, Data};
use shared::{
    queue::TickTask,
    sweep::{self, RequeueReport},
};

use crate::context::JobContext;

/// Pushes again the jobs and webhook events that Postgres says are pending and Redis lost. A duplicate push is harmless: every handler claims its row first.
///
/// A failed run is not retried (`AbortError`): the next tick does the same work from scratch.
#[tracing::instrument(skip_all, fields(tick.scheduled_at = tick.scheduled_at))]
pub async fn handle(tick: TickTask, ctx: Data<JobContext>) -> Result<RequeueReport, BoxDynError> {
    sweep::requeue_stale(&ctx.sweeps()).await.map_err(|e| {
        tracing::error!(error.message = %e, error.cause_chain = ?e, "stale-work sweep run failed");
        AbortError::new(e).into()
    })
}
