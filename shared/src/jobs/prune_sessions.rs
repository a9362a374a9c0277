//! `prune_sessions`: deletes login sessions (refresh-token families, with their tokens) that
//! can no longer be used and have not been usable for `SESSION_RETENTION_DAYS`: revoked that
//! long ago, or whose newest token expired that long ago. Without it every login leaves rows
//! behind for good.

use serde::{Deserialize, Serialize};

use super::Periodic;
use crate::{
    db::{self, StoreError},
    metrics,
    services::Services,
};

/// Families deleted per statement.
const BATCH: i64 = 500;

/// Statements per run at most, so a run ends even on a huge backlog; the next day continues.
const MAX_BATCHES: usize = 40;

/// What a run deleted.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionPruneReport {
    /// Token families deleted (their tokens went with them).
    pub families: u64,
}

/// Daily at 03:30 UTC (`SCHEDULE_PRUNE_SESSIONS`). Deleting a dead family is safe at any time:
/// a token of it is refused either way, and a family younger than the retention is never
/// touched, so a login in progress keeps its own.
pub struct PruneSessions;

impl Periodic for PruneSessions {
    const NAME: &'static str = "prune_sessions";
    const SCHEDULE: &'static str = "0 30 3 * * *";
    type Report = SessionPruneReport;
    type Error = StoreError;

    async fn run(services: &Services) -> Result<SessionPruneReport, StoreError> {
        let retention = services.settings.sweeps.session_retention;
        let mut conn = services.pool.acquire().await?;
        let mut report = SessionPruneReport::default();
        for _ in 0..MAX_BATCHES {
            let deleted = db::tokens::prune_dead_families(&mut conn, retention, BATCH).await?;
            report.families += deleted;
            if deleted < BATCH as u64 {
                break;
            }
        }
        metrics::DELETED.add(["sessions"], report.families);
        Ok(report)
    }
}
