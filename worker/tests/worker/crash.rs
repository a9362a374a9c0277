//! The worker binary under the two ways a process stops: SIGTERM drains the job in flight,
//! and after a SIGKILL another replica runs the job again within 30 s and it takes effect once.
//!
//! The job is a real checkout whose payment call (a local Stripe fake) is slow the first time,
//! so the worker is stopped after the order was committed and before the job finished: the
//! hardest point for "exactly once in effect".

use std::time::{Duration, Instant};

use test_support::{
    eventually,
    stripe::{create_keys, stripe_fake_with_slow_first_create},
};
use wiremock::MockServer;

use crate::fleet::{
    checkout, job_state, orders_of, ready_buyer, spawn_worker, stripe_app, wait_for_job,
};

const START: Duration = Duration::from_secs(30);

/// Redelivery bound of the README: orphaned 25 s after the dead worker's last heartbeat, seen
/// by a live one within its next heartbeat (5 s), give or take apalis' 1 s timestamps.
const REDELIVERY_BOUND: Duration = Duration::from_secs(31);

async fn wait_for_payment_calls(stripe: &MockServer, n: usize) {
    eventually(
        "the worker to call Stripe",
        Duration::from_secs(20),
        || async move {
            let calls = create_keys(stripe).await.len();
            if calls >= n {
                Ok(())
            } else {
                Err(format!("{calls} calls"))
            }
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_the_job_in_flight_finish_and_then_exits_0() {
    // Arrange: a checkout whose payment call takes 3 s.
    let (stripe, _) = stripe_fake_with_slow_first_create(Duration::from_secs(3)).await;
    let app = stripe_app(&stripe.uri()).await;
    let (token, address, _) = ready_buyer(&app).await;
    let mut worker = spawn_worker(&app, &[]);
    worker.wait_for_message("worker running", START);
    let job = checkout(&app, &token, &address).await;
    wait_for_payment_calls(&stripe, 1).await;

    // Act: stop it mid-job.
    worker.signal("TERM");
    let status = worker.wait_for_exit(Duration::from_secs(20));

    // Assert: the job finished before the process exited 0.
    assert!(
        status.success(),
        "exit {status}; output: {:#?}",
        worker.output
    );
    assert_eq!(worker.logged_message("worker stopped")["signal"], "SIGTERM");
    let (status, attempts, _) = job_state(&app, job).await;
    assert_eq!((status.as_str(), attempts), ("succeeded", 1));
    assert_eq!(orders_of(&app, job).await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_workers_job_runs_again_on_another_replica_within_30s_and_takes_effect_once() {
    // Arrange: a checkout whose first payment call hangs for 8 s.
    let (stripe, _) = stripe_fake_with_slow_first_create(Duration::from_secs(8)).await;
    let app = stripe_app(&stripe.uri()).await;
    let (token, address, _) = ready_buyer(&app).await;
    let mut first = spawn_worker(&app, &[]);
    first.wait_for_message("worker running", START);
    let job = checkout(&app, &token, &address).await;
    wait_for_payment_calls(&stripe, 1).await;
    // The order is committed, and the job is claimed for at most 15 s at a time.
    wait_for_job(&app, job, Duration::from_secs(10), |(status, _, lease)| {
        status == "running" && lease.is_some_and(|left| left < 16.0)
    })
    .await;
    assert_eq!(orders_of(&app, job).await, 1);

    // Act: kill it, and start another replica.
    first.kill();
    let killed_at = Instant::now();
    let mut second = spawn_worker(&app, &[]);

    // Assert: the other replica claims it again within the bound and finishes it.
    wait_for_job(&app, job, Duration::from_secs(45), |(_, attempts, _)| {
        *attempts >= 2
    })
    .await;
    let rerun_after = killed_at.elapsed();
    let (status, attempts, _) = wait_for_job(&app, job, Duration::from_secs(15), |(status, ..)| {
        status != "running"
    })
    .await;
    eprintln!("killed worker's job claimed again {rerun_after:?} after SIGKILL");
    assert!(
        rerun_after <= REDELIVERY_BOUND,
        "ran again only after {rerun_after:?}; output: {:#?}",
        second.output
    );
    assert_eq!((status.as_str(), attempts), ("succeeded", 2));
    // Once in effect: one order, and both payment calls used the same idempotency key, so
    // Stripe made one PaymentIntent.
    assert_eq!(orders_of(&app, job).await, 1);
    let keys = create_keys(&stripe).await;
    assert_eq!(keys.len(), 2, "{keys:?}");
    assert_eq!(keys[0], keys[1]);
    app.assert_stock_invariant().await;
    second.signal("TERM");
    assert!(second.wait_for_exit(Duration::from_secs(20)).success());
}
