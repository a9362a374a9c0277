//! `purge_inactive`: hard-deletes users and listings soft-deleted more than `PURGE_AFTER_DAYS`
//! ago. Orders keep their snapshots: buyer and seller names, titles, prices and the shipping
//! address are copied into the order when it is made, and the references to the purged rows
//! become NULL (`ON DELETE SET NULL`); tokens, addresses, carts and the user's own listings go
//! with the user (`ON DELETE CASCADE`).

use super::{BATCH, MAX_BATCHES, SweepDeps, SweepError};
use crate::{db::sweeps, metrics};

/// What a run deleted.
#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PurgeReport {
    /// Users deleted (with everything only theirs).
    pub users: u64,
    /// Listings deleted (of sellers who are still around).
    pub listings: u64,
}

/// Deletes what has been soft-deleted for longer than the purge period.
#[tracing::instrument(skip_all)]
pub async fn purge_inactive(deps: &SweepDeps) -> Result<PurgeReport, SweepError> {
    let after = deps.settings.purge_after;
    let mut report = PurgeReport::default();
    let mut conn = deps.pool.acquire().await?;
    for _ in 0..MAX_BATCHES {
        let deleted = sweeps::purge_listings(&mut conn, after, BATCH).await?;
        report.listings += deleted;
        if deleted < BATCH as u64 {
            break;
        }
    }
    for _ in 0..MAX_BATCHES {
        let deleted = sweeps::purge_users(&mut conn, after, BATCH).await?;
        report.users += deleted;
        if deleted < BATCH as u64 {
            break;
        }
    }
    metrics::DELETED.add(["users"], report.users);
    metrics::DELETED.add(["listings"], report.listings);
    tracing::info!(
        purged.users = report.users,
        purged.listings = report.listings,
        purge_after_days = after.as_secs() / 86_400,
        "soft-deleted users and listings purged"
    );
    Ok(report)
}
