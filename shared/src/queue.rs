//! The Redis side of the job queues: queue names, the apalis-redis configuration producers and
//! consumers share, the payloads tasks carry, and [`JobQueue`], the producer handle.
//!
//! Producers and consumers must agree on two things besides the payload type: the full queue
//! name and the apalis-redis [`Config`] used on both sides. Both are built here, so a push from
//! the api and a fetch in the worker can never disagree (`docs/ARCHITECTURE.md`, "Queues").
//!
//! The Postgres row is always written and committed first; the task only carries its id. If a
//! push fails, the row stays `queued` and the sweeper re-pushes it, so nothing accepted is lost.

use std::time::Duration;

use apalis::prelude::{TaskBuilder, TaskSink};
use apalis_redis::{Config, RedisStorage};
use redis::aio::ConnectionManager;
use serde::{Deserialize, Serialize, de::DeserializeOwned};
use uuid::Uuid;

use crate::{
    config::{ConfigError, WorkerSettings},
    telemetry::trace::{self, TraceId},
};

/// How long an idempotency key blocks a duplicate push. apalis-redis 1.0.0 deletes the key at
/// once when no TTL is set, so without this every duplicate cron tick would be queued again.
/// A day covers every cron period we use.
pub const IDEMPOTENCY_TTL: Duration = Duration::from_secs(24 * 60 * 60);

/// How often a worker proves it is alive and looks for orphaned tasks of dead workers. The
/// default (30 s) makes orphan recovery take minutes; 5 s keeps it short at a negligible cost
/// of one small Lua call per queue and process.
pub const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(5);

/// Heartbeats a worker may miss before its in-flight tasks are handed to another worker.
/// A dead worker's tasks are orphaned 25 s (5 × [`HEARTBEAT_INTERVAL`]) after its last
/// heartbeat, and a live worker notices at its next heartbeat, at most 5 s later: redelivery
/// after a crash takes at most 30 s. Set explicitly because apalis-redis 1.0.0 disagrees with
/// itself on the default (10 in `Config::default`, 2 in its docs).
pub const MISSED_HEARTBEATS: usize = 5;

/// The full apalis queue name for `job` in the deployment namespace `prefix`.
///
/// Joined with `-`, never `:`: apalis-redis builds its own keys as `<queue>:<suffix>`, and its
/// pub/sub factory splits on `:` to recover the queue name.
pub fn queue_name(prefix: &str, job: &str) -> String {
    format!("{prefix}-{job}")
}

/// Rejects a `REDIS_PREFIX` that would break queue names: empty (queues of all deployments
/// would collide), or containing `:` or whitespace (see [`queue_name`]).
pub fn validate_prefix(prefix: &str) -> Result<(), ConfigError> {
    let invalid = |reason: &str| ConfigError {
        name: "REDIS_PREFIX",
        reason: reason.to_owned(),
    };
    if prefix.is_empty() {
        return Err(invalid("must not be empty"));
    }
    if prefix.contains(':') || prefix.chars().any(char::is_whitespace) {
        return Err(invalid("must not contain ':' or whitespace"));
    }
    Ok(())
}

/// The apalis-redis configuration for one queue, used identically by producers and consumers.
///
/// * The queue is named explicitly: the default is the Rust type path of the payload, so a
///   rename would strand queued jobs.
/// * The idempotency TTL is set, or idempotency keys would not deduplicate anything. It is
///   applied at push time, which is why producers must use this config too.
/// * Heartbeat and missed heartbeats are explicit to bound orphan redelivery.
/// * The batch size follows the worker concurrency: a worker reserves a whole batch at once and
///   other replicas cannot take those tasks, so a larger batch only adds latency for long jobs.
///   It is at least 1, because apalis panics on 0.
pub fn redis_config(prefix: &str, job: &str, worker: &WorkerSettings) -> Config {
    Config::default()
        .queue(queue_name(prefix, job))
        .idempotency_ttl(Some(IDEMPOTENCY_TTL))
        .heartbeat_interval(HEARTBEAT_INTERVAL)
        .missed_heartbeats(MISSED_HEARTBEATS)
        .batch_size(worker.concurrency.max(1))
}

/// What a task carries on a queue, and what it says about itself in reports.
pub trait Payload:
    Serialize + DeserializeOwned + Clone + Send + Sync + Unpin + std::fmt::Debug + 'static
{
    /// The `jobs` row the task stands for, if it has one (trace context, claim lease).
    fn job_row(&self) -> Option<Uuid>;
    /// The task's id in logs and reports: the row id, the webhook event id, the tick.
    fn label(&self) -> String;
    /// The trace the task was pushed in (see `telemetry::trace`), if it carries one.
    fn trace_id(&self) -> Option<TraceId> {
        None
    }
    /// The Redis idempotency key of a push onto the queue of `job`, if duplicates are to be
    /// dropped by Redis (only ticks: every other handler claims its row in Postgres first).
    fn idempotency_key(&self, _job: &str) -> Option<String> {
        None
    }
}

/// The task of a job tracked in the `jobs` table: the row id, and the trace it was pushed in.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub struct JobTask {
    /// `jobs.id`.
    pub job_id: Uuid,
    /// The trace of the request or job that pushed it (absent in tasks pushed outside one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<TraceId>,
}

impl JobTask {
    /// The task of row `job_id`, in the current trace.
    pub fn new(job_id: Uuid) -> Self {
        Self {
            job_id,
            trace_id: trace::current(),
        }
    }
}

impl Payload for JobTask {
    fn job_row(&self) -> Option<Uuid> {
        Some(self.job_id)
    }
    fn label(&self) -> String {
        self.job_id.to_string()
    }
    fn trace_id(&self) -> Option<TraceId> {
        self.trace_id
    }
}

/// The task of a periodic job (expiry, reconciliation, sweeps): no `jobs` row, only the tick it
/// belongs to. Periodic handlers are idempotent by construction, and the tick doubles as the
/// Redis idempotency key so a tick emitted twice (two schedulers, a retry) is queued once.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub struct TickTask {
    /// The scheduled time of the tick (Unix seconds).
    pub scheduled_at: i64,
}

impl Payload for TickTask {
    fn job_row(&self) -> Option<Uuid> {
        None
    }
    fn label(&self) -> String {
        format!("tick-{}", self.scheduled_at)
    }
    /// `<job>-<scheduled_at>`, kept for [`IDEMPOTENCY_TTL`].
    fn idempotency_key(&self, job: &str) -> Option<String> {
        Some(format!("{job}-{}", self.scheduled_at))
    }
}

/// The task of a `payment_event` job: the id of its `webhook_events` row (Stripe's event id).
/// Webhook events have no `jobs` row; their own row is the job's record (`processed_at IS NULL`
/// while work is pending).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct WebhookEventTask {
    /// `webhook_events.id`, e.g. `evt_1QxR…` or `evt_dev_…`.
    pub event_id: String,
    /// The trace of the webhook request that recorded it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<TraceId>,
}

impl WebhookEventTask {
    /// The task of event `event_id`, in the current trace.
    pub fn new(event_id: String) -> Self {
        Self {
            event_id,
            trace_id: trace::current(),
        }
    }
}

impl Payload for WebhookEventTask {
    fn job_row(&self) -> Option<Uuid> {
        None
    }
    fn label(&self) -> String {
        self.event_id.clone()
    }
    fn trace_id(&self) -> Option<TraceId> {
        self.trace_id
    }
}

/// The channel a push is announced on, so idle workers of `queue` (a full queue name) wake at
/// once instead of at their next poll.
pub fn pushed_channel(queue: &str) -> String {
    format!("{queue}:pushed")
}

/// A push that did not reach Redis.
#[derive(Debug, thiserror::Error)]
#[error("could not push {queue} task {task}: {reason}")]
pub struct PushError {
    /// Queue name.
    pub queue: String,
    /// The task's label (row id, event id, tick).
    pub task: String,
    /// What went wrong.
    pub reason: String,
}

/// Producer handle for every queue of a deployment. Typed pushes go through
/// [`crate::jobs::Job::enqueue`]; this is the untyped layer below them.
#[derive(Clone)]
pub struct JobQueue {
    redis: ConnectionManager,
    prefix: String,
    worker: WorkerSettings,
}

impl JobQueue {
    /// Queues under `prefix`, configured exactly as the workers consume them.
    pub fn new(redis: ConnectionManager, prefix: &str, worker: &WorkerSettings) -> Self {
        Self {
            redis,
            prefix: prefix.to_owned(),
            worker: worker.clone(),
        }
    }

    /// Pushes `payload` onto the queue of job `job`, visible to workers after `delay`.
    ///
    /// A delay is how a job schedules its own backoff, since apalis-redis re-schedules failed
    /// tasks after a fixed `attempt` seconds. apalis schedules in whole seconds and truncates,
    /// so the delay is rounded up to never deliver early. An immediate push is announced on
    /// [`pushed_channel`] so that idle workers fetch it at once.
    pub async fn push<P: Payload>(
        &self,
        job: &str,
        payload: P,
        delay: Duration,
    ) -> Result<(), PushError> {
        let queue = queue_name(&self.prefix, job);
        let failed = |label: String, reason: String| PushError {
            queue: queue.clone(),
            task: label,
            reason,
        };
        let label = payload.label();
        let key = payload.idempotency_key(job);
        let config = redis_config(&self.prefix, job, &self.worker);
        let mut storage = RedisStorage::<P>::new(self.redis.clone()).with_config(config);
        let mut task = TaskBuilder::new(payload);
        if let Some(key) = key {
            task = task.idempotency_key(key);
        }
        if !delay.is_zero() {
            task = task.run_after(delay.saturating_add(Duration::from_millis(999)));
        }
        storage
            .push_task(task.build())
            .await
            .map_err(|e| failed(label, e.to_string()))?;
        if delay.is_zero() {
            // Best effort: a worker that misses it still finds the task at its next poll.
            let announced = redis::cmd("PUBLISH")
                .arg(pushed_channel(&queue))
                .arg(1)
                .query_async::<i64>(&mut self.redis.clone())
                .await;
            if let Err(e) = announced {
                tracing::debug!(error.message = %e, "push announcement failed");
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn worker_settings(concurrency: usize) -> WorkerSettings {
        WorkerSettings {
            concurrency,
            queues: vec!["all".to_owned()],
            poll_interval: Duration::from_millis(20),
            shutdown_timeout: Duration::from_secs(30),
        }
    }

    #[test]
    fn a_queue_name_is_the_prefix_and_the_job_joined_by_a_dash() {
        assert_eq!(queue_name("mp", "checkout"), "mp-checkout");
        assert_eq!(
            queue_name("staging", "payment_event"),
            "staging-payment_event"
        );
    }

    #[test]
    fn a_prefix_with_a_colon_or_nothing_in_it_is_rejected() {
        assert!(validate_prefix("mp").is_ok());
        assert!(validate_prefix("test-1a2b").is_ok());
        for bad in ["", "mp:prod", "m p"] {
            let err = validate_prefix(bad).unwrap_err();
            assert_eq!(err.name, "REDIS_PREFIX", "{bad:?}");
        }
    }

    #[test]
    fn the_redis_config_sets_queue_idempotency_heartbeat_and_batch() {
        let config = redis_config("mp", "expire_orders", &worker_settings(8));
        assert_eq!(config.queue.as_ref(), "mp-expire_orders");
        assert_eq!(config.idempotency_ttl, Some(IDEMPOTENCY_TTL));
        assert_eq!(config.heartbeat_interval, Duration::from_secs(5));
        assert_eq!(config.orphaned_duration(), Duration::from_secs(25));
        assert_eq!(config.batch_size, 8);
    }

    #[test]
    fn a_zero_concurrency_still_gives_a_valid_batch_size() {
        assert_eq!(
            redis_config("mp", "checkout", &worker_settings(0)).batch_size,
            1
        );
    }

    #[test]
    fn only_ticks_are_deduplicated_by_redis() {
        let tick = TickTask { scheduled_at: 60 };
        assert_eq!(
            tick.idempotency_key("prune_jobs").as_deref(),
            Some("prune_jobs-60")
        );
        let row = JobTask::new(Uuid::nil());
        assert_eq!(row.idempotency_key("checkout"), None);
        assert_eq!(row.job_row(), Some(Uuid::nil()));
        let event = WebhookEventTask::new("evt_1".into());
        assert_eq!(event.idempotency_key("payment_event"), None);
        assert_eq!(event.label(), "evt_1");
    }
}
