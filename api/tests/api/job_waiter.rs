//! A long-poll waiting for a job is woken when the api's job-finished subscription comes back
//! after a Redis restart (announcements made while it was down are lost), instead of sleeping
//! through its whole `wait`. Runs a private `redis-server`, since restarting the shared one would
//! disturb every other test.

use std::time::{Duration, Instant};

use api::job_waiter::JobWaiter;
use test_support::{
    eventually_every,
    private_redis::{PrivateRedis, free_port, redis_server_installed},
};
use uuid::Uuid;

const CHANNEL: &str = "test:job-finished";

/// Subscribers of the channel on the Redis at `url`.
async fn subscribers(url: &str) -> Result<i64, String> {
    let client = redis::Client::open(url).map_err(|e| e.to_string())?;
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .map_err(|e| e.to_string())?;
    let (_, n): (String, i64) = redis::cmd("PUBSUB")
        .arg("NUMSUB")
        .arg(CHANNEL)
        .query_async(&mut conn)
        .await
        .map_err(|e| e.to_string())?;
    if n > 0 {
        Ok(n)
    } else {
        Err("no subscriber yet".into())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_poll_is_woken_when_the_subscription_is_back_after_a_redis_restart() {
    if !redis_server_installed() {
        eprintln!("SKIPPED: no redis-server binary to restart (apt-get install redis-server)");
        return;
    }
    // Arrange: the waiter subscribed on a private Redis, and a request waiting for a job.
    let port = free_port();
    let url = format!("redis://127.0.0.1:{port}");
    let redis = PrivateRedis::start(port);
    let waiter = JobWaiter::start(redis::Client::open(url.as_str()).unwrap(), CHANNEL.into());
    let url_ref = url.as_str();
    eventually_every(
        "the waiter's subscription",
        Duration::from_secs(10),
        Duration::from_millis(50),
        move || subscribers(url_ref),
    )
    .await;
    let mut waiting = waiter.register(Uuid::now_v7());

    // Act: Redis restarts (the job's announcement, had there been one, is lost with it).
    drop(redis);
    let _redis = PrivateRedis::start(port);
    let started = Instant::now();
    waiting.wait(Duration::from_secs(30)).await;

    // Assert: woken once the subscription is back (it retries every second), not after 30 s.
    let woken_after = started.elapsed();
    assert!(
        woken_after < Duration::from_secs(10),
        "woken after {woken_after:?}"
    );
    eventually_every(
        "the subscription again",
        Duration::from_secs(10),
        Duration::from_millis(50),
        move || subscribers(url_ref),
    )
    .await;
}
