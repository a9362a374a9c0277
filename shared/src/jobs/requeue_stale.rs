//! `requeue_stale`: pushes again the jobs and webhook events that Postgres says are pending and
//! Redis lost.

use super::Periodic;
use crate::{
    services::Services,
    sweep::{self, RequeueReport, SweepError},
};

/// Every 15 s (`SCHEDULE_REQUEUE_STALE`), so lost work is found within `REQUEUE_GRACE_SECS`
/// plus 15 s. A duplicate push is harmless: every handler claims
/// its row first.
pub struct RequeueStale;

impl Periodic for RequeueStale {
    const NAME: &'static str = "requeue_stale";
    const SCHEDULE: &'static str = "*/15 * * * * *";
    type Report = RequeueReport;
    type Error = SweepError;

    async fn run(services: &Services) -> Result<RequeueReport, SweepError> {
        sweep::requeue_stale(&services.sweeps()).await
    }
}
