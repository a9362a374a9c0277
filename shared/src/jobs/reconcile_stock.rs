//! `reconcile_stock`: rebuilds the stock-gate counters from Postgres and reports the drift.

use super::Periodic;
use crate::{
    services::Services,
    sweep::{self, ReconcileReport, SweepError},
};

/// Every 5 minutes (`SCHEDULE_RECONCILE_STOCK`); safe alongside checkouts (see `sweep`).
pub struct ReconcileStock;

impl Periodic for ReconcileStock {
    const NAME: &'static str = "reconcile_stock";
    const SCHEDULE: &'static str = "0 */5 * * * *";
    type Report = ReconcileReport;
    type Error = SweepError;

    async fn run(services: &Services) -> Result<ReconcileReport, SweepError> {
        sweep::reconcile_stock(&services.sweeps()).await
    }
}
