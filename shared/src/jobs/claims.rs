//! The claim a delivery holds on its `jobs` row, and handing it back when the attempt fails.
//!
//! A handler claims its row before doing anything (`db::jobs::claim`), leased for
//! [`CLAIM_LEASE`]; the worker extends the lease every few seconds while the handler runs
//! (`worker::lease`), so a live worker keeps its job however slow the attempt, and a dead
//! worker's job can be claimed again [`CLAIM_LEASE`] after its last renewal at the latest.
//!
//! An attempt that fails on a database or Redis error hands its claim back at once
//! ([`release_after_error`]): the retry apalis delivers a second later claims the row instead
//! of finding its own lease. When PostgreSQL is the thing that is down, the release fails too;
//! then the retry finds the job busy, fails again, and claims it once the lease has lapsed.

use std::time::Duration;

use sqlx::PgPool;

use crate::db::{self, jobs::JobRow};

/// How long a claim lasts unless the worker extends it: three missed renewals (every 5 s)
/// before another delivery may take the job over.
pub const CLAIM_LEASE: Duration = Duration::from_secs(15);

/// apalis-redis re-delivers a failed task after as many seconds as the task's attempt number
/// (at most 25 deliveries). A job's row counts at least as many attempts as its task, so this
/// is never earlier than the redelivery: the sweeper waits for it before re-pushing.
pub fn redelivery_delay(attempts: i32) -> Duration {
    Duration::from_secs(u64::try_from(attempts.clamp(1, 25)).unwrap_or(1))
}

/// Hands the claim of `job` back after its attempt failed on a database or Redis error (best
/// effort: a failure is logged, and the lease runs out on its own).
pub async fn release_after_error(pool: &PgPool, job: &JobRow) {
    let released = async {
        let mut conn = pool.acquire().await?;
        db::jobs::release(
            &mut conn,
            job.id,
            job.attempts,
            redelivery_delay(job.attempts),
        )
        .await
    }
    .await;
    match released {
        Ok(true) => tracing::info!(job.id = %job.id, "claim handed back after a failed attempt"),
        Ok(false) => {}
        Err(e) => tracing::warn!(
            job.id = %job.id, error.message = %e,
            "could not hand the claim back; it lapses with its lease"
        ),
    }
}
