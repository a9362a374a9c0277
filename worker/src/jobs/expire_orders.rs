//! The `expire_orders` job: one scheduler tick, adapted to `shared::expiry::expire_orders`.

use apalis::prelude::{BoxDynError, Data};
use shared::{expiry::ExpiryReport, queue::TickTask};

use crate::context::JobContext;

/// Expires the pending orders past their deadline. Safe to run concurrently and repeatedly:
/// runs claim disjoint orders, and every order is closed under its row lock only if still
/// pending. A failed run is retried by apalis like any task, which is harmless, and the next
/// tick (a minute later) picks up whatever it left anyway.
#[tracing::instrument(skip_all, fields(tick.scheduled_at = tick.scheduled_at))]
pub async fn handle(tick: TickTask, ctx: Data<JobContext>) -> Result<ExpiryReport, BoxDynError> {
    shared::expiry::expire_orders(&ctx.payment())
        .await
        .map_err(|e| {
            tracing::error!(error.message = %e, error.cause_chain = ?e, "expiry run failed");
            e.into()
        })
}
