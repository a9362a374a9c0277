//! Keeping a running job's lease alive, so that a dead worker's job can be taken over soon.
//!
//! A handler claims its `jobs` row with a lease (`running` until `lease_expires_at`); another
//! delivery may only claim it once the lease has run out. Domain code picks a lease long enough
//! for its slowest attempt (checkout: 120 s), which would make a SIGKILLed worker's job wait
//! that long, although apalis hands its task to another worker after 25–30 s. So while the
//! handler runs, this keeper sets the lease to [`LEASE_TTL`] from now every [`RENEW_EVERY`]:
//! a live worker keeps its job, and a dead one's lease runs out at most [`LEASE_TTL`] after
//! it died, before the redelivery arrives (STACK: orphans are re-queued after 5 missed
//! heartbeats of 5 s, i.e. at least 20 s after the last one).
//!
//! The first renewal is [`FIRST_RENEWAL`] after the handler starts (the claim is its first
//! statement); a worker killed before that leaves the domain lease in place, and the sweeper
//! re-pushes the job once it expires.

use std::time::Duration;

use sqlx::PgPool;
use tokio::task::JoinHandle;
use uuid::Uuid;

/// The lease a live worker keeps extending: three renewals may fail (a Postgres stall) before
/// it lapses.
pub const LEASE_TTL: Duration = Duration::from_secs(15);

/// How often the lease is extended.
pub const RENEW_EVERY: Duration = Duration::from_secs(5);

/// When the first extension happens, shortening the domain lease to [`LEASE_TTL`].
pub const FIRST_RENEWAL: Duration = Duration::from_secs(1);

/// Extends the lease of one job until dropped.
#[derive(Debug)]
pub struct LeaseKeeper(JoinHandle<()>);

impl LeaseKeeper {
    /// Starts extending the lease of job `job_id` (a no-op until the handler has claimed it,
    /// and after it finished).
    pub fn start(pool: PgPool, job_id: Uuid) -> Self {
        Self(tokio::spawn(async move {
            tokio::time::sleep(FIRST_RENEWAL).await;
            loop {
                if let Err(e) = renew(&pool, job_id).await {
                    // The lease has slack for a few misses; if Postgres stays away, another
                    // worker may take the job over, which the claim makes safe.
                    tracing::warn!(job.id = %job_id, error.message = %e, "could not extend the job lease");
                }
                tokio::time::sleep(RENEW_EVERY).await;
            }
        }))
    }
}

async fn renew(pool: &PgPool, job_id: Uuid) -> Result<bool, shared::db::StoreError> {
    let mut conn = pool.acquire().await?;
    shared::db::jobs::renew_lease(&mut conn, job_id, LEASE_TTL).await
}

impl Drop for LeaseKeeper {
    fn drop(&mut self) {
        self.0.abort();
    }
}
