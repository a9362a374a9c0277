//! Pushing jobs onto the Redis queues, the producer side of `shared::jobs`.
//!
//! The Postgres row is always written and committed first; the task only carries its id. If a
//! push fails, the row stays `queued` and the sweeper re-pushes it, so nothing accepted is lost.

use std::time::Duration;

use apalis::prelude::{TaskBuilder, TaskSink};
use apalis_redis::RedisStorage;
use redis::aio::ConnectionManager;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{config::WorkerSettings, jobs};

/// The task of a job tracked in the `jobs` table: just the row id.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub struct JobTask {
    /// `jobs.id`.
    pub job_id: Uuid,
}

/// The task of a periodic job (expiry, reconciliation, sweeps): no `jobs` row, only the tick it
/// belongs to. Periodic handlers are idempotent by construction, and the tick doubles as the
/// Redis idempotency key so a tick emitted twice (two schedulers, a retry) is queued once.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub struct TickTask {
    /// The scheduled time of the tick (Unix seconds).
    pub scheduled_at: i64,
}

/// The channel a push is announced on, so idle workers of `queue` (a full queue name) wake at
/// once instead of at their next poll.
pub fn pushed_channel(queue: &str) -> String {
    format!("{queue}:pushed")
}

/// A push that did not reach Redis.
#[derive(Debug, thiserror::Error)]
#[error("could not push {queue} task {job_id}: {reason}")]
pub struct PushError {
    /// Queue name.
    pub queue: String,
    /// The job.
    pub job_id: Uuid,
    /// What went wrong.
    pub reason: String,
}

/// Producer handle for every queue of a deployment.
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

    /// Pushes the task for job row `job_id` onto the queue of `job` (a name from
    /// [`jobs::QUEUES`]).
    ///
    /// No Redis idempotency key is set on purpose: a re-push by the sweeper must go through even
    /// if an earlier task for the row was lost, and duplicates are harmless because the handler
    /// claims the row in Postgres first.
    pub async fn push(&self, job: &str, job_id: Uuid) -> Result<(), PushError> {
        self.push_after(job, job_id, Duration::ZERO).await
    }

    /// Like [`JobQueue::push`], but the task becomes visible to workers only after `delay`: how
    /// a job schedules its own backoff, since apalis-redis re-schedules failed tasks after a
    /// fixed `attempt` seconds (STACK.md, pitfall 3). apalis schedules in whole seconds and
    /// truncates, so the delay is rounded up to never deliver early.
    pub async fn push_after(
        &self,
        job: &str,
        job_id: Uuid,
        delay: Duration,
    ) -> Result<(), PushError> {
        let config = jobs::redis_config(&self.prefix, job, &self.worker);
        let mut storage = RedisStorage::<JobTask>::new(self.redis.clone()).with_config(config);
        let mut task = TaskBuilder::new(JobTask { job_id });
        if !delay.is_zero() {
            task = task.run_after(delay.saturating_add(Duration::from_millis(999)));
        }
        let queue = jobs::queue_name(&self.prefix, job);
        let failed = |reason: String| PushError {
            queue: queue.clone(),
            job_id,
            reason,
        };
        storage
            .push_task(task.build())
            .await
            .map_err(|e| failed(e.to_string()))?;
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

impl JobQueue {
    /// Pushes the tick `scheduled_at` of periodic job `job`, deduplicated by Redis with the
    /// idempotency key `<job>-<scheduled_at>` (kept for a day): a tick emitted twice is queued once.
    pub async fn push_tick(&self, job: &str, scheduled_at: i64) -> Result<(), PushError> {
        let config = jobs::redis_config(&self.prefix, job, &self.worker);
        let mut storage = RedisStorage::<TickTask>::new(self.redis.clone()).with_config(config);
        let task = TaskBuilder::new(TickTask { scheduled_at })
            .idempotency_key(format!("{job}-{scheduled_at}"))
            .build();
        storage.push_task(task).await.map_err(|e| PushError {
            queue: jobs::queue_name(&self.prefix, job),
            job_id: Uuid::nil(),
            reason: e.to_string(),
        })
    }
}

/// The task of a `payment_event` job: the id of its `webhook_events` row (Stripe's event id).
/// Webhook events have no `jobs` row; their own row is the job's record (`processed_at IS NULL`
/// while work is pending).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct WebhookEventTask {
    /// `webhook_events.id`, e.g. `evt_1QxR…` or `evt_dev_…`.
    pub event_id: String,
}

impl JobQueue {
    /// Pushes the `payment_event` task for the stored webhook event `event_id`.
    ///
    /// Like [`JobQueue::push`], without a Redis idempotency key: the sweeper must be able to
    /// re-push an event whose task was lost, and duplicates are harmless because the handler
    /// claims the row in Postgres first.
    pub async fn push_webhook_event(&self, event_id: &str) -> Result<(), PushError> {
        let job = jobs::PAYMENT_EVENT;
        let config = jobs::redis_config(&self.prefix, job, &self.worker);
        let mut storage =
            RedisStorage::<WebhookEventTask>::new(self.redis.clone()).with_config(config);
        let task = TaskBuilder::new(WebhookEventTask {
            event_id: event_id.to_owned(),
        })
        .build();
        storage.push_task(task).await.map_err(|e| PushError {
            queue: jobs::queue_name(&self.prefix, job),
            job_id: Uuid::nil(),
            reason: format!("event {event_id}: {e}"),
        })
    }
}
