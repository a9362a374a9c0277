//! A job whose push to Redis was lost is pushed again by `requeue_stale` and done within 35 s:
//! the scheduler binary emits the ticks (every 15 s), a worker (in-process) runs them and the
//! checkout, all with the default settings (20 s grace).

use shared::jobs::Job as _;
use std::{
    collections::BTreeSet,
    sync::Arc,
    time::{Duration, Instant},
};

use shared::{checkout, jobs, shutdown::StopSignal};
use test_support::{TestApp, poll_until};
use tokio::sync::oneshot;
use worker::{JobContext, QueueSelection, RestartPolicy, build_monitor, run_until_stopped};

use crate::helpers::SchedulerProcess;

/// Bound of the README: stale after 20 s, and the sweep runs every 15 s.
const RECOVERY_BOUND: Duration = Duration::from_secs(37);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_whose_push_was_lost_is_pushed_again_and_done_within_35s() {
    // Arrange: a checkout accepted in Postgres whose push never reached Redis.
    let app = TestApp::spawn().await;
    let (_, seller) = app.signed_up("seller").await;
    let listing = app.create_listing(&seller, "Chair", 4_000, 3).await;
    let (buyer_id, token, address) = app.buyer("buyer").await;
    app.add_to_cart(&token, listing["id"].as_str().expect("id"), 1)
        .await;
    let admitted = checkout::admit(
        app.pool(),
        &app.state.gate,
        &checkout::AdmitRules::from_settings(&app.settings),
        buyer_id.parse().expect("uuid"),
        "buyer",
        address.parse().expect("uuid"),
        "lost-push",
    )
    .await
    .expect("admitted");
    let accepted_at = Instant::now();
    let job = admitted.job_id;

    // A worker for checkouts and sweeps, and the scheduler with only this sweep on.
    let ctx = JobContext::connect(app.settings.clone())
        .await
        .expect("connect");
    let policy = Arc::new(RestartPolicy::default());
    let queues = [
        jobs::Checkout::NAME,
        <jobs::RequeueStale as jobs::Job>::NAME,
    ]
    .map(str::to_owned);
    let selection = QueueSelection::Only(BTreeSet::from(queues));
    let monitor = build_monitor(&ctx, &selection, &policy);
    let (stop, stopped) = oneshot::channel::<()>();
    let running = tokio::spawn(async move {
        let signal = async move {
            let _ = stopped.await;
            StopSignal::Terminate
        };
        run_until_stopped(monitor, signal, &policy).await
    });
    let mut scheduler = SchedulerProcess::spawn(&[
        ("DATABASE_URL", &app.settings.database_url),
        ("REDIS_PREFIX", &app.settings.redis_prefix),
        ("SCHEDULE_EXPIRE_ORDERS", "off"),
        ("SCHEDULE_RECONCILE_STOCK", "off"),
        ("SCHEDULE_PURGE_INACTIVE", "off"),
        ("SCHEDULE_PRUNE_JOBS", "off"),
    ]);

    // Act: wait for the job to be done.
    let app_ref = &app;
    let status = poll_until(
        RECOVERY_BOUND + Duration::from_secs(10),
        Duration::from_millis(100),
        move || async move {
            let (status,): (String,) = sqlx::query_as("SELECT status FROM jobs WHERE id = $1")
                .bind(job)
                .fetch_one(app_ref.pool())
                .await
                .expect("job row");
            if status == "succeeded" {
                Ok(status)
            } else {
                Err(status)
            }
        },
    )
    .await
    .unwrap_or_else(|status| status);
    let took = accepted_at.elapsed();

    // Assert
    scheduler.drain();
    eprintln!("lost job done {took:?} after it was accepted");
    assert_eq!(
        status, "succeeded",
        "scheduler output: {:#?}",
        scheduler.output
    );
    assert!(took <= RECOVERY_BOUND, "took {took:?}");
    assert!(!scheduler.messages("tick emitted").is_empty());
    let orders: i64 = sqlx::query_scalar("SELECT count(*) FROM orders WHERE checkout_job_id = $1")
        .bind(job)
        .fetch_one(app.pool())
        .await
        .expect("count");
    assert_eq!(orders, 1);
    stop.send(()).expect("the worker is running");
    let outcome = tokio::time::timeout(Duration::from_secs(30), running).await;
    assert!(matches!(outcome, Ok(Ok(Ok(StopSignal::Terminate)))));
}
