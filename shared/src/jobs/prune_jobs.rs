//! `prune_jobs`: deletes finished job rows and finished queue tasks past their retention, since
//! Redis keeps finished apalis tasks forever.

use super::Periodic;
use crate::{
    services::Services,
    sweep::{self, PruneReport, SweepError},
};

/// Hourly (`SCHEDULE_PRUNE_JOBS`).
pub struct PruneJobs;

impl Periodic for PruneJobs {
    const NAME: &'static str = "prune_jobs";
    const SCHEDULE: &'static str = "0 0 * * * *";
    type Report = PruneReport;
    type Error = SweepError;

    async fn run(services: &Services) -> Result<PruneReport, SweepError> {
        sweep::prune_jobs(&services.sweeps()).await
    }
}
