//! The `reconcile_stock` job: one scheduler tick, adapted to `shared::sweep::reconcile_stock`.

use apalis::prelude::{AbortError, BoxDynError, Data};
use shared::{
    queue::TickTask,
    sweep::{self, ReconcileReport},
};

use crate::context::JobContext;

/// Rebuilds the stock-gate counters from Postgres and reports the drift. Safe to run twice or alongside checkouts (see `shared::sweep`).
///
/// A failed run is not retried (`AbortError`): the next tick does the same work from scratch.
#[tracing::instrument(skip_all, fields(tick.scheduled_at = tick.scheduled_at))]
pub async fn handle(tick: TickTask, ctx: Data<JobContext>) -> Result<ReconcileReport, BoxDynError> {
    sweep::reconcile_stock(&ctx.sweeps()).await.map_err(|e| {
        tracing::error!(error.message = %e, error.cause_chain = ?e, "stock reconciliation run failed");
        AbortError::new(e).into()
    })
}
