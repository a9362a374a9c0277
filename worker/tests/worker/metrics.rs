//! The worker's metrics listener, and its memory under load.

use std::time::Duration;

use shared::{
    jobs::{self, Job as _},
    queue::{JobQueue, JobTask},
};
use test_support::{TestApp, eventually, eventually_every};
use uuid::Uuid;

use crate::fleet::{checkout, ready_buyer, spawn_worker, wait_for_job};

const START: Duration = Duration::from_secs(30);

/// Target of the README for one worker process under load.
const RSS_LIMIT: u64 = 40 * 1024 * 1024;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_worker_exposes_job_queue_and_memory_metrics() {
    // Arrange: a worker in development payment mode, and one checkout for it.
    let app = TestApp::spawn().await;
    let (token, address, _) = ready_buyer(&app).await;
    let mut worker = spawn_worker(
        &app,
        &[("METRICS_ADDR", "127.0.0.1:0"), ("STRIPE_SECRET_KEY", "")],
    );
    worker.wait_for_message("metrics listening", START);
    let job = checkout(&app, &token, &address).await;
    wait_for_job(&app, job, Duration::from_secs(20), |(status, ..)| {
        status == "succeeded"
    })
    .await;

    // Act: the result is recorded just after the row is written.
    let worker_ref = &worker;
    let text = eventually(
        "the checkout's result in the metrics",
        Duration::from_secs(5),
        move || async move {
            let text = worker_ref.scrape("/metrics");
            if text.contains("jobs_total{kind=\"checkout\",outcome=\"ok\"} 1") {
                Ok(text)
            } else {
                Err(text)
            }
        },
    )
    .await;

    // Assert
    for series in [
        "jobs_total{kind=\"checkout\",outcome=\"ok\"} 1\n",
        "job_duration_seconds_count{kind=\"checkout\"} 1\n",
        "jobs_in_flight{kind=\"checkout\"} 0\n",
        "queue_depth{queue=\"checkout\",state=\"ready\"} 0\n",
        "queue_depth{queue=\"geocode_address\",state=\"dead\"} 0\n",
        "# TYPE stock_gate_drift_units gauge\n",
        "process_resident_memory_bytes ",
    ] {
        assert!(text.contains(series), "no {series:?} in:\n{text}");
    }
    assert_eq!(worker.scrape("/health/live"), "ok\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_under_load_stays_under_40_mb_of_memory() {
    // Arrange: thousands of deliveries on three queues at once, each claiming its row in
    // Postgres (they find none, so each is quick and the worker runs at full concurrency).
    let app = TestApp::spawn().await;
    let mut worker = spawn_worker(&app, &[("WORKER_QUEUES", "all")]);
    worker.wait_for_message("worker running", START);
    let queue = JobQueue::new(
        app.redis.clone(),
        &app.settings.redis_prefix,
        &app.settings.worker,
    );
    const PER_QUEUE: usize = 1_500;
    for job in [
        jobs::Checkout::NAME,
        jobs::GeocodeAddress::NAME,
        jobs::RefundOrder::NAME,
    ] {
        for _ in 0..PER_QUEUE {
            let task = JobTask::new(Uuid::now_v7());
            queue.push(job, task, Duration::ZERO).await.expect("push");
        }
    }

    // Act: wait until all are done.
    let config =
        |job| shared::queue::redis_config(&app.settings.redis_prefix, job, &app.settings.worker);
    let (app_ref, output) = (&app, &worker.output);
    eventually_every(
        "every task to be done",
        Duration::from_secs(120),
        Duration::from_millis(200),
        move || async move {
            let mut done = 0;
            for job in [
                jobs::Checkout::NAME,
                jobs::GeocodeAddress::NAME,
                jobs::RefundOrder::NAME,
            ] {
                let n: usize = redis::cmd("SCARD")
                    .arg(config(job).done_jobs_set())
                    .query_async(&mut app_ref.redis.clone())
                    .await
                    .expect("SCARD");
                done += n;
            }
            if done == 3 * PER_QUEUE {
                Ok(())
            } else {
                Err(format!("only {done} done; output: {output:#?}"))
            }
        },
    )
    .await;

    // Assert: the peak resident memory of the whole run.
    let (peak, now) = worker.memory();
    eprintln!(
        "worker memory under load: peak {} KiB, now {} KiB",
        peak / 1024,
        now / 1024
    );
    assert!(peak < RSS_LIMIT, "peak RSS {} KiB", peak / 1024);
}
