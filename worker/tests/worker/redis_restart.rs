//! A Redis restart does not leave the worker silently dead: its job workers fail, the monitor
//! restarts them (`restart.rs`), and they consume the queue again once Redis is back. Runs a
//! private `redis-server` (installed with Redis; `.ci/run` installs it), since restarting the
//! shared one would disturb every other test.

use std::time::Duration;

use shared::{
    jobs::{self, Job as _},
    queue::{JobQueue, JobTask},
};
use test_support::{
    TestApp, eventually_every,
    private_redis::{PrivateRedis, free_port, redis_server_installed},
};
use uuid::Uuid;

use crate::fleet::spawn_worker;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_redis_restart_the_worker_reconnects_and_consumes_again() {
    if !redis_server_installed() {
        eprintln!("SKIPPED: no redis-server binary to restart (apt-get install redis-server)");
        return;
    }
    // Arrange: a worker on a private Redis.
    let port = free_port();
    let url = format!("redis://127.0.0.1:{port}");
    let redis = PrivateRedis::start(port);
    let app = TestApp::spawn().await;
    let mut worker = spawn_worker(&app, &[("REDIS_URL", &url)]);
    worker.wait_for_message("worker running", Duration::from_secs(30));

    // Act: Redis goes away and comes back empty; then a task is pushed.
    drop(redis);
    // Deliberate downtime (not a wait for anything): the worker's connections fail meanwhile.
    std::thread::sleep(Duration::from_secs(1));
    let _redis = PrivateRedis::start(port);
    let client = shared::kv::redis_client(&url, None).expect("Redis URL");
    let conn = shared::kv::connect_redis(&client)
        .await
        .expect("Redis is back");
    let queue = JobQueue::new(
        conn.clone(),
        &app.settings.redis_prefix,
        &app.settings.worker,
    );
    // A task for a job row that does not exist: the handler finds nothing to claim and ends.
    let task = JobTask::new(Uuid::now_v7());
    jobs::Checkout::enqueue(&queue, task).await.expect("push");

    // Assert: the task is handled, and the worker process is still the same one.
    let done_set = shared::queue::redis_config(
        &app.settings.redis_prefix,
        jobs::Checkout::NAME,
        &app.settings.worker,
    )
    .done_jobs_set();
    let output = &worker.output;
    let (done_set, conn) = (&done_set, &conn);
    eventually_every(
        "the task to be handled after the restart",
        Duration::from_secs(60),
        Duration::from_millis(100),
        move || async move {
            let done: usize = redis::cmd("SCARD")
                .arg(done_set)
                .query_async(&mut conn.clone())
                .await
                .expect("SCARD");
            if done == 1 {
                Ok(())
            } else {
                Err(format!("{done} done; output: {output:#?}"))
            }
        },
    )
    .await;
    worker.signal("TERM");
    let status = worker.wait_for_exit(Duration::from_secs(20));
    assert!(
        status.success(),
        "exit {status}; output: {:#?}",
        worker.output
    );
    assert!(
        worker.logged("job worker failed"),
        "no restart seen: {:#?}",
        worker.output
    );
}
