//! `prune_jobs`: deletes finished job rows after `JOB_RETENTION_DAYS`, and finished apalis task
//! data after `TASK_RETENTION_HOURS` (apalis-redis keeps `<queue>:done`/`:dead` members, their
//! `:data` fields and `:meta:<id>` hashes forever).
//!
//! Not apalis' `vacuum()`: it also deletes tasks that are waiting for a retry, whose ids stay
//! scheduled and later kill the worker that fetches them. Only members of the done
//! and dead sets are touched here, and only once their `done_at` is older than the retention;
//! a task being retried is in neither set.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use redis::Script;

use super::{BATCH, MAX_BATCHES, SweepDeps, SweepError};
use crate::{db::sweeps, jobs, metrics, queue};

/// Deletes the finished tasks among `ARGV[3..]` whose `done_at` is before `ARGV[2]`.
/// `KEYS[1]`: the done or dead set; `KEYS[2]`: the data hash; `ARGV[1]`: the meta key prefix.
/// A task without `done_at` is kept: its age is unknown.
const DELETE_FINISHED: &str = r"
local deleted = 0
for i = 3, #ARGV do
  local id = ARGV[i]
  local meta = ARGV[1] .. ':' .. id
  local done_at = tonumber(redis.call('HGET', meta, 'done_at'))
  if done_at and done_at < tonumber(ARGV[2]) then
    redis.call('SREM', KEYS[1], id)
    redis.call('HDEL', KEYS[2], id)
    redis.call('DEL', meta)
    deleted = deleted + 1
  end
end
return deleted
";

/// What a run deleted.
#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PruneReport {
    /// Finished `jobs` rows.
    pub job_rows: u64,
    /// Finished apalis tasks (done or dead) with their data and metadata.
    pub queue_tasks: u64,
}

/// Prunes finished jobs in Postgres and finished tasks in every queue.
#[tracing::instrument(skip_all)]
pub async fn prune_jobs(deps: &SweepDeps) -> Result<PruneReport, SweepError> {
    let mut report = PruneReport::default();
    {
        let mut conn = deps.pool.acquire().await?;
        for _ in 0..MAX_BATCHES {
            let deleted =
                sweeps::prune_finished_jobs(&mut conn, deps.settings.job_retention, BATCH).await?;
            report.job_rows += deleted;
            if deleted < BATCH as u64 {
                break;
            }
        }
    }
    let cutoff = unix_now().saturating_sub(deps.settings.task_retention.as_secs());
    for job in jobs::names() {
        let config = queue::redis_config(&deps.prefix, job, &deps.worker);
        for set in [config.done_jobs_set(), config.dead_jobs_set()] {
            report.queue_tasks += prune_set(
                deps,
                &set,
                &config.job_data_hash(),
                &config.job_meta_hash(),
                cutoff,
            )
            .await?;
        }
    }
    metrics::DELETED.add(["job_rows"], report.job_rows);
    metrics::DELETED.add(["queue_tasks"], report.queue_tasks);
    tracing::info!(
        pruned.job_rows = report.job_rows,
        pruned.queue_tasks = report.queue_tasks,
        "finished jobs pruned"
    );
    Ok(report)
}

/// Walks one done or dead set with `SSCAN` and deletes its members finished before `cutoff`.
async fn prune_set(
    deps: &SweepDeps,
    set: &str,
    data_hash: &str,
    meta_prefix: &str,
    cutoff: u64,
) -> Result<u64, SweepError> {
    let script = Script::new(DELETE_FINISHED);
    let mut deleted = 0;
    let mut cursor: u64 = 0;
    loop {
        let (next, ids): (u64, Vec<String>) = redis::cmd("SSCAN")
            .arg(set)
            .arg(cursor)
            .arg("COUNT")
            .arg(BATCH)
            .query_async(&mut deps.redis.clone())
            .await?;
        if !ids.is_empty() {
            let n: u64 = script
                .key(set)
                .key(data_hash)
                .arg(meta_prefix)
                .arg(cutoff)
                .arg(&ids)
                .invoke_async(&mut deps.redis.clone())
                .await?;
            deleted += n;
        }
        if next == 0 {
            return Ok(deleted);
        }
        cursor = next;
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_secs()
}
