//! The `reconcile_payments` job: one scheduler tick, adapted to
//! `shared::payment_events::reconcile::reconcile_payments`.

use apalis::prelude::{AbortError, BoxDynError, Data};
use shared::{
    payment_events::reconcile::{self, PaymentReconcileReport},
    queue::TickTask,
};

use crate::context::JobContext;

/// Compares recent orders' ledgers and Stripe payments with the orders and reports drift. Only
/// reads, so it is safe to run twice or alongside anything.
///
/// A failed run is not retried (`AbortError`): the next tick does the same work from scratch.
#[tracing::instrument(skip_all, fields(tick.scheduled_at = tick.scheduled_at))]
pub async fn handle(
    tick: TickTask,
    ctx: Data<JobContext>,
) -> Result<PaymentReconcileReport, BoxDynError> {
    let sweeps = &ctx.settings.sweeps;
    reconcile::reconcile_payments(
        &ctx.payment(),
        sweeps.reconcile_payments_window,
        sweeps.reconcile_payments_max_orders,
    )
    .await
    .map_err(|e| {
        tracing::error!(error.message = %e, error.cause_chain = ?e, "payment reconciliation run failed");
        AbortError::new(e).into()
    })
}
