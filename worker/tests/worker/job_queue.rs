//! The seam later jobs plug into, exercised with a test job in place of a real one: a task
//! pushed the way the api will push it is picked up quickly, deduplicated by its idempotency
//! key, handled once with `Data` and `Attempt`, recorded as done, and shutdown is clean.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use apalis::prelude::*;
use apalis_redis::RedisStorage;
use serde::{Deserialize, Serialize};
use shared::shutdown::StopSignal;
use tokio::sync::{mpsc, oneshot};
use worker::{
    JobContext, QueueSelection, RestartPolicy, build_monitor,
    queues::{job_backend, worker_name},
    run_until_stopped,
};

use test_support::eventually;

use crate::helpers::{settings, unique_prefix};

/// A queue no real job uses.
const ECHO: &str = "test_echo";

/// A stand-in payload; real payloads live in `shared::jobs`.
#[derive(Debug, Serialize, Deserialize)]
struct Echo {
    n: u32,
}

/// Reports what it saw through the channel in its context; the signature is the one real
/// handlers use (payload, `Data<T>` context, `Attempt`).
async fn echo(
    job: Echo,
    seen: Data<mpsc::UnboundedSender<(u32, usize)>>,
    attempt: Attempt,
) -> Result<u32, BoxDynError> {
    seen.send((job.n, attempt.current()))?;
    Ok(job.n)
}

/// Registers the echo job exactly as `jobs::register_all` will register a real one.
fn monitor_with_echo(
    ctx: &JobContext,
    policy: &Arc<RestartPolicy>,
    seen: mpsc::UnboundedSender<(u32, usize)>,
) -> Monitor {
    let ctx = ctx.clone();
    // No real job is selected, so only the echo worker consumes its private queue.
    let none = QueueSelection::Only(Default::default());
    build_monitor(&ctx, &none, policy).register(move |_restarts| {
        let queue = shared::queue::queue_name(&ctx.settings.redis_prefix, ECHO);
        WorkerBuilder::new(worker_name(&queue))
            .backend(job_backend::<Echo>(&ctx, ECHO))
            .data(ctx.clone())
            .data(seen.clone())
            .concurrency(ctx.settings.worker.concurrency)
            .catch_panic()
            .enable_tracing()
            .build(echo)
    })
}

#[tokio::test]
async fn a_pushed_task_is_picked_up_quickly_deduplicated_and_handled_once() {
    // Arrange: a running worker for the test queue.
    let prefix = unique_prefix();
    let ctx = JobContext::connect(settings(&prefix, &[]))
        .await
        .expect("Postgres and Redis are up");
    let policy = Arc::new(RestartPolicy::default());
    let (seen_tx, mut seen) = mpsc::unbounded_channel();
    let monitor = monitor_with_echo(&ctx, &policy, seen_tx);
    let (stop, stopped) = oneshot::channel::<()>();
    let running = tokio::spawn({
        let policy = Arc::clone(&policy);
        async move {
            let signal = async move {
                let _ = stopped.await;
                StopSignal::Terminate
            };
            run_until_stopped(monitor, signal, &policy).await
        }
    });
    let config = shared::queue::redis_config(&prefix, ECHO, &ctx.settings.worker);
    let mut producer = RedisStorage::<Echo>::new(ctx.redis.clone()).with_config(config.clone());
    wait_until_a_worker_is_registered(&ctx, &config).await;

    // Act: push as the api will, with our own id, twice with the same idempotency key.
    let task_id = TaskId::from_string(uuid::Uuid::now_v7().to_string());
    let first = TaskBuilder::new(Echo { n: 7 })
        .task_id(task_id.clone())
        .idempotency_key("echo-7");
    let pushed_at = Instant::now();
    producer.push_task(first.build()).await.expect("push");
    let duplicate = TaskBuilder::new(Echo { n: 7 }).idempotency_key("echo-7");
    producer
        .push_task(duplicate.build())
        .await
        .expect("push duplicate");

    // Assert: handled once, on its first attempt, well before the 5 s heartbeat.
    let handled = tokio::time::timeout(Duration::from_secs(5), seen.recv()).await;
    assert_eq!(handled.expect("the task is handled"), Some((7, 1)));
    assert!(
        pushed_at.elapsed() < Duration::from_secs(2),
        "took {:?}",
        pushed_at.elapsed()
    );
    assert_eq!(
        stored_task_count(&ctx, &config).await,
        1,
        "the duplicate push was not dropped"
    );
    let task = wait_for_status(&mut producer, &task_id, Status::Done).await;
    assert_eq!(task.attempt(), 1);

    // Assert: a clean stop.
    stop.send(()).expect("the worker is still running");
    let outcome = tokio::time::timeout(Duration::from_secs(10), running).await;
    let signal = outcome
        .expect("stops in time")
        .expect("no panic")
        .expect("stops cleanly");
    assert_eq!(signal, StopSignal::Terminate);
    assert!(seen.try_recv().is_err(), "the task was handled twice");
    delete_namespace(&ctx, &prefix).await;
}

async fn wait_until_a_worker_is_registered(ctx: &JobContext, config: &apalis_redis::Config) {
    let redis = &ctx.redis;
    eventually(
        "the echo worker to register",
        Duration::from_secs(10),
        move || async move {
            let workers: usize = redis::cmd("ZCARD")
                .arg(config.workers_set())
                .query_async(&mut redis.clone())
                .await
                .expect("ZCARD");
            (workers > 0).then_some(())
        },
    )
    .await;
}

async fn stored_task_count(ctx: &JobContext, config: &apalis_redis::Config) -> usize {
    let mut redis = ctx.redis.clone();
    redis::cmd("HLEN")
        .arg(config.job_data_hash())
        .query_async(&mut redis)
        .await
        .expect("HLEN")
}

/// The result is acknowledged from the worker's poll loop shortly after the handler returns.
async fn wait_for_status(
    storage: &mut RedisStorage<Echo>,
    id: &TaskId,
    status: Status,
) -> apalis_redis::RedisTask {
    let what = format!("task {id} to reach {status:?}");
    let status = &status;
    eventually(&what, Duration::from_secs(5), || {
        let mut storage = storage.clone();
        async move {
            let task = storage.fetch_by_id(id).await.expect("fetch_by_id");
            match task {
                Some(task) if task.status() == *status => Ok(task),
                other => Err(other.map(|t| t.status())),
            }
        }
    })
    .await
}

/// Removes every key of the test namespace (no FLUSHDB: other tests share this Redis).
async fn delete_namespace(ctx: &JobContext, prefix: &str) {
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
    let queues: Vec<String> = keys
        .into_iter()
        .filter(|k| k.ends_with(":workers"))
        .collect();
    if !queues.is_empty() {
        let _: () = redis::cmd("ZREM")
            .arg("core:apalis:queues:list")
            .arg(&queues)
            .query_async(&mut redis)
            .await
            .expect("ZREM");
    }
}
