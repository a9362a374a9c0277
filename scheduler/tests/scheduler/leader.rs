//! Two scheduler replicas: only the holder of the leader lock emits ticks, and when it dies the
//! other takes over within the bound of the README (1.3 × the 10 s lock TTL = 13 s).

use std::time::{Duration, Instant};

use test_support::eventually_blocking;

use crate::helpers::{SchedulerProcess, unique_prefix};

const START: Duration = Duration::from_secs(30);

/// Failover bound of the README: the lock expires at most 10 s after the dead leader's last
/// renewal, the follower tries every 3 s, and the next tick comes within 1 s.
const FAILOVER_BOUND: Duration = Duration::from_secs(15);

/// A replica that ticks every second (prune_jobs; every other schedule off).
fn replica(prefix: &str) -> SchedulerProcess {
    SchedulerProcess::spawn(&[
        ("REDIS_PREFIX", prefix),
        ("METRICS_ADDR", "127.0.0.1:0"),
        ("SCHEDULE_EXPIRE_ORDERS", "off"),
        ("SCHEDULE_RECONCILE_STOCK", "off"),
        ("SCHEDULE_REQUEUE_STALE", "off"),
        ("SCHEDULE_PURGE_INACTIVE", "off"),
        ("SCHEDULE_PRUNE_JOBS", "* * * * * *"),
    ])
}

/// Collects both replicas' output for `period`.
fn watch(a: &mut SchedulerProcess, b: &mut SchedulerProcess, period: Duration) {
    let until = Instant::now() + period;
    while Instant::now() < until {
        a.drain();
        b.drain();
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Waits until `replica` logs `message` (again: `seen` times already); returns how long it took.
fn wait_for_nth(
    replica: &mut SchedulerProcess,
    message: &str,
    seen: usize,
    timeout: Duration,
) -> Duration {
    let started = Instant::now();
    eventually_blocking(&format!("a new {message:?} log"), timeout, || {
        replica.drain();
        if replica.messages(message).len() > seen {
            Ok(())
        } else {
            Err(format!("output: {:#?}", replica.output))
        }
    });
    started.elapsed()
}

#[test]
fn only_the_leader_emits_and_a_killed_leader_is_replaced_within_the_bound() {
    // Arrange: two replicas of one deployment.
    let prefix = unique_prefix();
    let mut a = replica(&prefix);
    let mut b = replica(&prefix);
    a.wait_for_message("scheduler running", START);
    b.wait_for_message("scheduler running", START);

    // Act: let them tick for a few seconds.
    watch(&mut a, &mut b, Duration::from_secs(5));

    // Assert: exactly one leads and emits; the other skips every tick.
    let (mut leader, mut follower) = if a.messages("tick emitted").is_empty() {
        (b, a)
    } else {
        (a, b)
    };
    assert!(
        leader.messages("tick emitted").len() >= 3,
        "the leader emitted too few ticks; output: {:#?}",
        leader.output
    );
    assert!(
        follower.messages("tick emitted").is_empty(),
        "both replicas emitted; follower output: {:#?}",
        follower.output
    );
    assert_eq!(leader.messages("became scheduler leader").len(), 1);
    assert!(leader.scrape("/metrics").contains("\nscheduler_leader 1\n"));
    let follower_metrics = follower.scrape("/metrics");
    assert!(
        follower_metrics.contains("\nscheduler_leader 0\n"),
        "{follower_metrics}"
    );
    assert!(
        follower_metrics
            .contains("scheduler_ticks_total{job=\"prune_jobs\",outcome=\"not_leader\"}"),
        "{follower_metrics}"
    );

    // Act: the leader dies without releasing the lock.
    leader.kill();
    follower.drain();
    let emitted = follower.messages("tick emitted").len();

    // Assert: the follower takes over and emits within the bound.
    let took = wait_for_nth(
        &mut follower,
        "tick emitted",
        emitted,
        Duration::from_secs(30),
    );
    eprintln!("leader replaced {took:?} after SIGKILL");
    assert!(took <= FAILOVER_BOUND, "took {took:?}");
    assert_eq!(follower.messages("became scheduler leader").len(), 1);
    follower.signal("TERM");
    assert!(follower.wait_for_exit(Duration::from_secs(15)).success());
    assert!(follower.logged("released scheduler leadership"));
}

#[test]
fn a_leader_that_stops_cleanly_hands_over_at_once() {
    let prefix = unique_prefix();
    let mut first = replica(&prefix);
    first.wait_for_message("became scheduler leader", START);
    let mut second = replica(&prefix);
    second.wait_for_message("scheduler running", START);

    first.signal("TERM");
    assert!(first.wait_for_exit(Duration::from_secs(15)).success());
    let took = wait_for_nth(
        &mut second,
        "became scheduler leader",
        0,
        Duration::from_secs(10),
    );

    // It released the lock, so the successor needs at most one attempt interval (3 s).
    eprintln!("leadership handed over {took:?} after SIGTERM");
    assert!(took <= Duration::from_secs(5), "took {took:?}");
}
