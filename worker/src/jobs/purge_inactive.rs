//! The `purge_inactive` job: one scheduler tick, adapted to `shared::sweep::purge_inactive`.

use apalis::prelude::{AbortError, BoxDynError, Data};
use shared::{
    queue::TickTask,
    sweep::{self, PurgeReport},
};

use crate::context::JobContext;

/// Hard-deletes users and listings soft-deleted longer than `PURGE_AFTER_DAYS`; orders keep their snapshots.
///
/// A failed run is not retried (`AbortError`): the next tick does the same work from scratch.
#[tracing::instrument(skip_all, fields(tick.scheduled_at = tick.scheduled_at))]
pub async fn handle(tick: TickTask, ctx: Data<JobContext>) -> Result<PurgeReport, BoxDynError> {
    sweep::purge_inactive(&ctx.sweeps()).await.map_err(|e| {
        tracing::error!(error.message = %e, error.cause_chain = ?e, "purge run failed");
        AbortError::new(e).into()
    })
}
