//! Every schedule of the scheduler, registered in [`register_all`].
//!
//! One cron worker per periodic job of the registry (`shared::jobs::periodic`), on the job's
//! default schedule unless `SCHEDULE_<JOB>` sets another (a cron expression with seconds, in
//! UTC, or `off`). Its tick only pushes a [`shared::queue::TickTask`] onto that job's queue, and
//! only while this replica holds the leader lock. The push is deduplicated in Redis by the
//! tick's time (the tick's idempotency key), so a tick emitted twice (two replicas during a
//! leader handover) is queued once.
//!
//! The schedule runs in memory: ticks missed while no scheduler runs are skipped, so every
//! sweep catches up on its own (e.g. "expire every order past its deadline", not "expire the
//! orders of the last minute").

use std::time::Duration;

use apalis::prelude::{BoxDynError, Data, Monitor, WorkerBuilder, WorkerBuilderExt};
use apalis_cron::{CronScheduler, Tick};
use cron::Schedule;
use shared::{
    config::ConfigError,
    jobs,
    leader::LeaderLock,
    metrics,
    queue::{JobQueue, TickTask},
};

use crate::SchedulerContext;

/// What a tick handler needs: which job it emits, where to, and whether this replica leads.
#[derive(Clone)]
struct Emitter {
    job: &'static str,
    queue: JobQueue,
    leader: LeaderLock,
}

/// Every periodic job with its schedule (`None`: switched off), the default unless `lookup`
/// finds `SCHEDULE_<JOB>`.
pub fn from_lookup(
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<Vec<(&'static str, Option<Schedule>)>, ConfigError> {
    jobs::periodic()
        .into_iter()
        .map(|(job, default)| Ok((job, shared::config::schedule(&lookup, job, default)?)))
        .collect()
}

/// Registers a cron worker for every schedule that is not `off`.
pub fn register_all(monitor: Monitor, ctx: &SchedulerContext) -> Monitor {
    let mut monitor = monitor;
    for (job, schedule) in ctx.schedules.iter() {
        let job = *job;
        let Some(schedule) = schedule.clone() else {
            tracing::info!(job, "schedule switched off");
            continue;
        };
        for outcome in ["emitted", "not_leader", "failed"] {
            metrics::TICKS.add([job, outcome], 0);
        }
        let emitter = Emitter {
            job,
            queue: ctx.services.queue.clone(),
            leader: ctx.leader.clone(),
        };
        monitor = monitor.register(move |_restarts| {
            WorkerBuilder::new(format!("cron-{job}"))
                .backend(CronScheduler::new(schedule.clone()))
                .data(emitter.clone())
                .enable_tracing()
                .build(emit)
        });
    }
    monitor
}

/// Pushes the tick's job if this replica leads. A failed push is logged and not retried: the
/// next tick comes soon, and every sweep catches up on what an earlier run missed.
async fn emit(tick: Tick, emitter: Data<Emitter>) -> Result<(), BoxDynError> {
    let job = emitter.job;
    let scheduled_at = i64::try_from(tick.get_timestamp())?;
    if !emitter.leader.is_leader() {
        tracing::debug!(
            job,
            tick.scheduled_at = scheduled_at,
            "not the leader; tick skipped"
        );
        metrics::TICKS.inc([job, "not_leader"]);
        return Ok(());
    }
    let tick = TickTask { scheduled_at };
    match emitter.queue.push(job, tick, Duration::ZERO).await {
        Ok(()) => {
            tracing::info!(job, tick.scheduled_at = scheduled_at, "tick emitted");
            metrics::TICKS.inc([job, "emitted"]);
        }
        Err(e) => {
            tracing::error!(job, error.message = %e, error.cause_chain = ?e, "could not emit tick");
            metrics::TICKS.inc([job, "failed"]);
        }
    }
    Ok(())
}
