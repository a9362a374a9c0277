//! `purge_inactive`: hard-deletes users and listings soft-deleted longer than
//! `PURGE_AFTER_DAYS`; orders keep their snapshots.

use super::Periodic;
use crate::{
    services::Services,
    sweep::{self, PurgeReport, SweepError},
};

/// Daily at 03:00 UTC (`SCHEDULE_PURGE_INACTIVE`).
pub struct PurgeInactive;

impl Periodic for PurgeInactive {
    const NAME: &'static str = "purge_inactive";
    const SCHEDULE: &'static str = "0 0 3 * * *";
    type Report = PurgeReport;
    type Error = SweepError;

    async fn run(services: &Services) -> Result<PurgeReport, SweepError> {
        sweep::purge_inactive(&services.sweeps()).await
    }
}
