//! "This job finished" notifications, so clients long-polling a job wake up at once instead of
//! polling the database.
//!
//! Workers publish the job id on one Redis channel per deployment after the final state is
//! committed; each api process keeps one subscription and wakes the matching waiters. A lost
//! message only delays a waiter until its timeout, after which it re-reads the row: Postgres
//! stays the source of truth.

use redis::aio::ConnectionManager;
use uuid::Uuid;

/// The channel for `prefix`.
pub fn channel(prefix: &str) -> String {
    format!("{prefix}:job-finished")
}

/// Announces that `job_id` reached a final state. Failures are logged, not returned: the state
/// is already committed and waiters fall back to their timeout.
pub async fn publish(redis: &ConnectionManager, prefix: &str, job_id: Uuid) {
    let result = redis::cmd("PUBLISH")
        .arg(channel(prefix))
        .arg(job_id.to_string())
        .query_async::<i64>(&mut redis.clone())
        .await;
    if let Err(e) = result {
        tracing::warn!(job.id = %job_id, error.message = %e, "could not publish job completion");
    }
}
