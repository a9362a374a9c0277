//! Keeping a running job's claim alive, so that a dead worker's job can be taken over soon.
//!
//! A handler claims its `jobs` row for `shared::jobs::CLAIM_LEASE` (15 s); another delivery
//! may only claim it once that lease has run out. While the handler runs, this keeper extends
//! the lease to [`CLAIM_LEASE`] from now every [`RENEW_EVERY`]: a live worker keeps its job
//! however long the attempt takes, and a dead one's lease runs out at most [`CLAIM_LEASE`]
//! after its last renewal, before apalis re-delivers its task (orphans are handed to a live
//! worker after 5 missed heartbeats of 5 s).

use std::time::Duration;

use shared::jobs::CLAIM_LEASE;
use sqlx::PgPool;
use tokio::task::JoinHandle;
use uuid::Uuid;

/// How often the lease is extended: three renewals may fail (a PostgreSQL restart) before it
/// lapses.
pub const RENEW_EVERY: Duration = Duration::from_secs(5);

/// Extends the lease of one job until dropped.
#[derive(Debug)]
pub struct LeaseKeeper(JoinHandle<()>);

impl LeaseKeeper {
    /// Starts extending the lease of job `job_id` (a no-op until the handler has claimed it,
    /// and after it finished).
    pub fn start(pool: PgPool, job_id: Uuid) -> Self {
        Self(tokio::spawn(async move {
            loop {
                tokio::time::sleep(RENEW_EVERY).await;
                if let Err(e) = renew(&pool, job_id).await {
                    // The lease has slack for a few misses; if PostgreSQL stays away, another
                    // worker may take the job over, which the claim makes safe.
                    tracing::warn!(job.id = %job_id, error.message = %e, "could not extend the job lease");
                }
            }
        }))
    }
}

async fn renew(pool: &PgPool, job_id: Uuid) -> Result<bool, shared::db::StoreError> {
    let mut conn = pool.acquire().await?;
    shared::db::jobs::renew_lease(&mut conn, job_id, CLAIM_LEASE).await
}

impl Drop for LeaseKeeper {
    fn drop(&mut self) {
        self.0.abort();
    }
}
