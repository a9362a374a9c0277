//! `requeue_stale`: pushes again the work Postgres says is pending but Redis apparently lost
//! (a push that failed after the commit, a Redis restart without persistence, a task dropped by
//! hand), so nothing accepted is lost.
//!
//! A re-push is harmless if the task was not lost after all: every handler claims its row in
//! Postgres first, and a second delivery finds it claimed or finished. Each row is re-pushed at
//! most once per grace period (the sweep marks it), so a queue backlog longer than the grace
//! costs one duplicate delivery per waiting job per period, not one per sweep.

use std::time::Duration;

use super::{BATCH, MAX_BATCHES, SweepDeps, SweepError};
use crate::{
    db::sweeps,
    jobs::{self, Job as _, PaymentEvent},
    metrics,
    queue::{JobTask, WebhookEventTask},
};

/// What a run pushed again.
#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RequeueReport {
    /// Job rows re-pushed.
    pub jobs: u64,
    /// Webhook events re-pushed.
    pub webhook_events: u64,
    /// Pushes that failed (left for the next run).
    pub failed: u64,
}

/// Re-pushes stale jobs and unprocessed webhook events.
#[tracing::instrument(skip_all)]
pub async fn requeue_stale(deps: &SweepDeps) -> Result<RequeueReport, SweepError> {
    let mut report = RequeueReport::default();
    requeue_jobs(deps, &mut report).await?;
    requeue_webhook_events(deps, &mut report).await?;
    if report.jobs + report.webhook_events + report.failed > 0 {
        tracing::warn!(
            requeued.jobs = report.jobs,
            requeued.webhook_events = report.webhook_events,
            requeued.failed = report.failed,
            "stale work pushed again"
        );
    }
    Ok(report)
}

async fn requeue_jobs(deps: &SweepDeps, report: &mut RequeueReport) -> Result<(), SweepError> {
    let queue = deps.queue();
    let settings = &deps.settings;
    let row_jobs = jobs::row_jobs();
    for _ in 0..MAX_BATCHES {
        let stale = {
            let mut conn = deps.pool.acquire().await?;
            sweeps::mark_stale_jobs(&mut conn, settings.requeue_grace, BATCH).await?
        };
        for (id, kind, trace_id) in &stale {
            // A job's kind is the name of its queue.
            let Some(job) = row_jobs.iter().find(|job| **job == kind.as_str()) else {
                tracing::error!(job.id = %id, job.kind = %kind, "stale job of an unknown kind");
                report.failed += 1;
                continue;
            };
            match queue
                .push(
                    job,
                    JobTask {
                        job_id: *id,
                        trace_id: *trace_id,
                    },
                    Duration::ZERO,
                )
                .await
            {
                Ok(()) => {
                    tracing::info!(job.id = %id, job.kind = %kind, "stale job pushed again");
                    metrics::REQUEUED.inc([*job]);
                    report.jobs += 1;
                }
                Err(e) => {
                    tracing::warn!(job.id = %id, error.message = %e, "could not push a stale job");
                    report.failed += 1;
                }
            }
        }
        if (stale.len() as i64) < BATCH {
            break;
        }
    }
    Ok(())
}

/// Re-pushes `payment_event` tasks for webhook events still unprocessed.
async fn requeue_webhook_events(
    deps: &SweepDeps,
    report: &mut RequeueReport,
) -> Result<(), SweepError> {
    let queue = deps.queue();
    let settings = &deps.settings;
    for _ in 0..MAX_BATCHES {
        let stale = {
            let mut conn = deps.pool.acquire().await?;
            sweeps::mark_stale_webhook_events(&mut conn, settings.requeue_grace, BATCH).await?
        };
        for id in &stale {
            let task = WebhookEventTask::new(id.clone());
            match PaymentEvent::enqueue(&queue, task).await {
                Ok(()) => {
                    tracing::info!(event.id = %id, "unprocessed webhook event pushed again");
                    metrics::REQUEUED.inc([PaymentEvent::NAME]);
                    report.webhook_events += 1;
                }
                Err(e) => {
                    tracing::warn!(event.id = %id, error.message = %e, "could not push a webhook event");
                    report.failed += 1;
                }
            }
        }
        if (stale.len() as i64) < BATCH {
            break;
        }
    }
    Ok(())
}
