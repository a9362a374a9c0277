//! The `prune_jobs` job: one scheduler tick, adapted to `shared::sweep::prune_jobs`.

use apalis::prelude::{AbortError, BoxDynError, Data};
use shared::{
    queue::TickTask,
    sweep::{self, PruneReport},
};

use crate::context::JobContext;

/// Deletes finished job rows and finished queue tasks past their retention.
///
/// A failed run is not retried (`AbortError`): the next tick does the same work from scratch.
#[tracing::instrument(skip_all, fields(tick.scheduled_at = tick.scheduled_at))]
pub async fn handle(tick: TickTask, ctx: Data<JobContext>) -> Result<PruneReport, BoxDynError> {
    sweep::prune_jobs(&ctx.sweeps()).await.map_err(|e| {
        tracing::error!(error.message = %e, error.cause_chain = ?e, "prune run failed");
        AbortError::new(e).into()
    })
}
