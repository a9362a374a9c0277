//! The claim a delivery holds on its `jobs` row, and handing it back when the attempt fails.
//!
//! A handler claims its row before doing anything (`db::jobs::claim`), leased for
//! [`CLAIM_LEASE`]; the worker extends the lease every few seconds while the handler runs
//! (`worker::lease`), so a live worker keeps its job however slow the attempt, and a dead
//! worker's job can be claimed again [`CLAIM_LEASE`] after its last renewal at the latest.
//!
//! An attempt that fails on a database or Redis error hands its claim back at once
//! ([`claimed`], which every row job runs its attempt through): the retry apalis delivers a
//! second later claims the row instead of finding its own lease. When PostgreSQL is the thing
//! that is down, the release fails too; then the retry finds the job busy, fails again, and
//! claims it once the lease has lapsed.

use std::{future::Future, time::Duration};

use sqlx::PgPool;
use uuid::Uuid;

use crate::db::{
    self, StoreError,
    jobs::{Claim, JobRow},
};

/// How long a claim lasts unless the worker extends it: three missed renewals (every 5 s)
/// before another delivery may take the job over.
pub const CLAIM_LEASE: Duration = Duration::from_secs(15);

/// apalis-redis re-delivers a failed task after as many seconds as the task's attempt number
/// (at most 25 deliveries). A job's row counts at least as many attempts as its task, so this
/// is never earlier than the redelivery: the sweeper waits for it before re-pushing.
pub fn redelivery_delay(attempts: i32) -> Duration {
    Duration::from_secs(u64::try_from(attempts.clamp(1, 25)).unwrap_or(1))
}

/// The error type of a job that claims its row: it can say "busy" and "store failure".
pub trait ClaimFailure: From<StoreError> {
    /// The error of a delivery that found the job claimed by another one (retried later).
    fn busy() -> Self;
    /// Whether the attempt failed on the database or Redis, so its claim is handed back.
    fn is_store(&self) -> bool;
}

/// Claims job `job_id` of `kind` and runs `attempt` on the claimed row. A job finished already
/// (or gone) gives `done`; one claimed by another delivery is [`ClaimFailure::busy`]; an attempt
/// failing on the database or Redis hands its claim back before the error is returned.
pub async fn claimed<T, E, F, Fut>(
    pool: &PgPool,
    job_id: Uuid,
    kind: &str,
    done: T,
    attempt: F,
) -> Result<T, E>
where
    E: ClaimFailure,
    F: FnOnce(JobRow) -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let mut conn = pool.acquire().await.map_err(StoreError::from)?;
    let job = match db::jobs::claim(&mut conn, job_id, kind, CLAIM_LEASE).await? {
        Claim::Claimed(job) => *job,
        Claim::Busy => return Err(E::busy()),
        Claim::Done => return Ok(done),
    };
    drop(conn);
    let (id, attempts) = (job.id, job.attempts);
    let result = attempt(job).await;
    if result.as_ref().is_err_and(E::is_store) {
        release_after_error(pool, id, attempts).await;
    }
    result
}

/// Hands the claim of attempt `attempts` of job `id` back after it failed on a database or
/// Redis error (best effort: a failure is logged, and the lease runs out on its own). For a
/// handler that claimed its row itself rather than through [`claimed`].
pub async fn release_after_error(pool: &PgPool, id: Uuid, attempts: i32) {
    let released = async {
        let mut conn = pool.acquire().await?;
        db::jobs::release(&mut conn, id, attempts, redelivery_delay(attempts)).await
    }
    .await;
    match released {
        Ok(true) => tracing::info!(job.id = %id, "claim handed back after a failed attempt"),
        Ok(false) => {}
        Err(e) => tracing::warn!(
            job.id = %id, error.message = %e,
            "could not hand the claim back; it lapses with its lease"
        ),
    }
}
