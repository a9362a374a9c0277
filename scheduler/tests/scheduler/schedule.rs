//! The seam later sweeps plug into, exercised with a test schedule in place of a real one: two
//! replicas of an every-second cron schedule push one job per tick, deduplicated by the
//! tick's idempotency key, and shutdown is clean.

use std::{
    collections::BTreeSet,
    str::FromStr,
    time::{Duration, Instant},
};

use apalis::prelude::*;
use apalis_cron::{CronScheduler, Tick};
use apalis_redis::RedisStorage;
use scheduler::{SchedulerContext, build_monitor, run_until_stopped};
use serde::{Deserialize, Serialize};
use shared::{config::Settings, jobs, shutdown::StopSignal};
use tokio::sync::{mpsc, oneshot};

use crate::helpers::{database_url, redis_url, unique_prefix};

/// A stand-in sweep payload; real payloads live in `shared::jobs`.
#[derive(Debug, Serialize, Deserialize)]
struct Sweep {
    tick: u64,
}

/// Pushes one sweep per tick, keyed by the tick, and reports the tick to the test.
async fn enqueue_sweep(
    tick: Tick,
    mut queue: Data<RedisStorage<Sweep>>,
    seen: Data<mpsc::UnboundedSender<u64>>,
) -> Result<(), BoxDynError> {
    let timestamp = tick.get_timestamp();
    let task = TaskBuilder::new(Sweep { tick: timestamp })
        .idempotency_key(format!(
            "{}-{timestamp}",
            <jobs::PruneJobs as jobs::Job>::NAME
        ))
        .build();
    queue.push_task(task).await?;
    seen.send(timestamp)?;
    Ok(())
}

fn settings(prefix: &str) -> Settings {
    let vars = [
        ("DATABASE_URL", database_url()),
        ("REDIS_URL", redis_url()),
        ("REDIS_PREFIX", prefix.to_owned()),
    ];
    Settings::from_lookup(|k| {
        vars.iter()
            .find(|(name, _)| *name == k)
            .map(|(_, v)| v.clone())
    })
    .expect("test settings are valid")
}

/// Registers the schedule as `schedules::register_all` will register a real one, `replicas`
/// times, as if that many scheduler processes ran.
fn monitor_with_sweep(
    ctx: &SchedulerContext,
    replicas: usize,
    seen: &mpsc::UnboundedSender<u64>,
) -> Monitor {
    let schedule = cron::Schedule::from_str("* * * * * *").expect("valid cron expression");
    let settings = &ctx.settings;
    let config = shared::queue::redis_config(
        &settings.redis_prefix,
        <jobs::PruneJobs as jobs::Job>::NAME,
        &settings.worker,
    );
    let queue = RedisStorage::<Sweep>::new(ctx.redis.clone()).with_config(config);
    let mut monitor = build_monitor(ctx);
    for replica in 0..replicas {
        let (schedule, queue, seen) = (schedule.clone(), queue.clone(), seen.clone());
        monitor = monitor.register(move |_restarts| {
            WorkerBuilder::new(format!(
                "cron-{}-{replica}",
                <jobs::PruneJobs as jobs::Job>::NAME
            ))
            .backend(CronScheduler::new(schedule.clone()))
            .data(queue.clone())
            .data(seen.clone())
            .enable_tracing()
            .build(enqueue_sweep)
        });
    }
    monitor
}

#[tokio::test]
async fn every_tick_of_two_replicas_becomes_exactly_one_job() {
    // Arrange
    let prefix = unique_prefix();
    let ctx = SchedulerContext::connect(settings(&prefix))
        .await
        .expect("Postgres and Redis are up");
    let (seen_tx, mut seen) = mpsc::unbounded_channel();
    let monitor = monitor_with_sweep(&ctx, 2, &seen_tx);
    let (stop, stopped) = oneshot::channel::<()>();
    let signal = async move {
        let _ = stopped.await;
        StopSignal::Terminate
    };

    // Act: run until both replicas handled the same two ticks, then stop.
    let running = tokio::spawn(run_until_stopped(monitor, signal));
    let mut pushes = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !ticks_seen_twice(&pushes, 2) {
        let remaining = deadline.saturating_duration_since(Instant::now());
        let tick = tokio::time::timeout(remaining, seen.recv()).await;
        pushes.push(
            tick.expect("ticks keep coming")
                .expect("the channel is open"),
        );
    }
    stop.send(()).expect("the scheduler is still running");
    let outcome = tokio::time::timeout(Duration::from_secs(15), running).await;
    let signal = outcome
        .expect("stops in time")
        .expect("no panic")
        .expect("stops cleanly");

    // Assert
    assert_eq!(signal, StopSignal::Terminate);
    while let Ok(tick) = seen.try_recv() {
        pushes.push(tick);
    }
    let ticks: BTreeSet<u64> = pushes.iter().copied().collect();
    assert_eq!(
        queued_jobs(&ctx, &prefix).await,
        ticks.len(),
        "pushes: {pushes:?}"
    );
    delete_namespace(&ctx, &prefix).await;
}

/// Whether at least `n` distinct ticks were pushed by both replicas.
fn ticks_seen_twice(pushes: &[u64], n: usize) -> bool {
    let ticks: BTreeSet<u64> = pushes.iter().copied().collect();
    ticks
        .iter()
        .filter(|t| pushes.iter().filter(|p| p == t).count() >= 2)
        .count()
        >= n
}

async fn queued_jobs(ctx: &SchedulerContext, prefix: &str) -> usize {
    let config = shared::queue::redis_config(
        prefix,
        <jobs::PruneJobs as jobs::Job>::NAME,
        &ctx.settings.worker,
    );
    let mut redis = ctx.redis.clone();
    redis::cmd("HLEN")
        .arg(config.job_data_hash())
        .query_async(&mut redis)
        .await
        .expect("HLEN")
}

/// Removes every key of the test namespace (no FLUSHDB: other tests share this Redis).
async fn delete_namespace(ctx: &SchedulerContext, prefix: &str) {
    let mut redis = ctx.redis.clone();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}-*"))
        .query_async(&mut redis)
        .await
        .expect("KEYS");
    if !keys.is_empty() {
        let _: () = redis::cmd("DEL")
            .arg(&keys)
            .query_async(&mut redis)
            .await
            .expect("DEL");
    }
}
