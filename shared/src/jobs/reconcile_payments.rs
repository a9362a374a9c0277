//! `reconcile_payments`: compares recent orders' ledgers with their payments at Stripe and
//! reports drift.

use super::Periodic;
use crate::{
    db::StoreError,
    payment_events::reconcile::{self, PaymentReconcileReport},
    services::Services,
};

/// Every 10 minutes at :30 (`SCHEDULE_RECONCILE_PAYMENTS`). Only reads, so it is safe to run
/// twice or alongside anything.
pub struct ReconcilePayments;

impl Periodic for ReconcilePayments {
    const NAME: &'static str = "reconcile_payments";
    const SCHEDULE: &'static str = "30 */10 * * * *";
    type Report = PaymentReconcileReport;
    type Error = StoreError;

    async fn run(services: &Services) -> Result<PaymentReconcileReport, StoreError> {
        let sweeps = &services.settings.sweeps;
        reconcile::reconcile_payments(
            &services.payment(),
            sweeps.reconcile_payments_window,
            sweeps.reconcile_payments_max_orders,
        )
        .await
    }
}
