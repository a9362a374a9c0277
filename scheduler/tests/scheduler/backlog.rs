//! The queue backlog metrics come from PostgreSQL through the scheduler leader: a checkout no
//! worker has taken is visible with every worker stopped, the leader alone exports it, and a
//! database that does not answer leaves the series out without failing the scrape.

use std::time::Duration;

use shared::checkout;
use test_support::{TestApp, eventually_blocking};

use crate::helpers::{SchedulerProcess, unique_prefix};

const START: Duration = Duration::from_secs(30);

/// How old the waiting checkout is made.
const AGE_SECS: f64 = 120.0;

/// Every schedule off: these replicas only hold (or seek) the lock and answer scrapes.
const NO_SCHEDULES: [(&str, &str); 7] = [
    ("SCHEDULE_EXPIRE_ORDERS", "off"),
    ("SCHEDULE_RECONCILE_STOCK", "off"),
    ("SCHEDULE_REQUEUE_STALE", "off"),
    ("SCHEDULE_PURGE_INACTIVE", "off"),
    ("SCHEDULE_PRUNE_JOBS", "off"),
    ("SCHEDULE_RECONCILE_PAYMENTS", "off"),
    ("SCHEDULE_PRUNE_SESSIONS", "off"),
];

fn replica(database_url: &str, prefix: &str) -> SchedulerProcess {
    let mut vars = vec![
        ("DATABASE_URL", database_url),
        ("REDIS_PREFIX", prefix),
        ("METRICS_ADDR", "127.0.0.1:0"),
    ];
    vars.extend(NO_SCHEDULES);
    SchedulerProcess::spawn(&vars)
}

/// The value of the sample `series` (name and labels) in a scrape.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .map(|value| value.parse().expect("a number"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_no_worker_running_the_leader_exports_how_long_a_checkout_has_waited() {
    // Arrange: a checkout accepted two minutes ago that no worker has taken (none runs).
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
        "waiting",
    )
    .await
    .expect("admitted");
    sqlx::query("UPDATE jobs SET created_at = now() - make_interval(secs => $2) WHERE id = $1")
        .bind(admitted.job_id)
        .bind(AGE_SECS)
        .execute(app.pool())
        .await
        .expect("backdated");
    let database_url = app.settings.database_url.clone();
    let prefix = app.settings.redis_prefix.clone();

    // Act: a scheduler takes the lead, a second one follows; both are scraped.
    let mut leader = replica(&database_url, &prefix);
    leader.wait_for_message("became scheduler leader", START);
    let mut follower = replica(&database_url, &prefix);
    follower.wait_for_message("scheduler running", START);
    // The first scrape opens the pool's first connection: on a busy machine that may take
    // longer than a scrape waits for the backlog, so scrape until it is there.
    let led = eventually_blocking("the backlog in the leader's metrics", START, || {
        let text = leader.scrape("/metrics");
        if text.contains("job_queue_backlog{") {
            Ok(text)
        } else {
            Err(text)
        }
    });
    let followed = follower.scrape("/metrics");

    // Assert: the leader sees the waiting checkout and a series for every other queue.
    let age = sample(&led, "job_queue_oldest_age_seconds{queue=\"checkout\"}")
        .unwrap_or_else(|| panic!("no checkout age in:\n{led}"));
    assert!(age >= AGE_SECS, "age {age} in:\n{led}");
    assert!(age < AGE_SECS + 60.0, "age {age} in:\n{led}");
    assert!(
        led.contains("\njob_queue_backlog{queue=\"checkout\"} 1\n"),
        "{led}"
    );
    for queue in ["geocode_address", "refund_order", "payment_event"] {
        let backlog = format!("job_queue_backlog{{queue=\"{queue}\"}}");
        let oldest = format!("job_queue_oldest_age_seconds{{queue=\"{queue}\"}}");
        assert_eq!(sample(&led, &backlog), Some(0.0), "{backlog} in:\n{led}");
        assert_eq!(sample(&led, &oldest), Some(0.0), "{oldest} in:\n{led}");
    }
    assert!(led.contains("\nscheduler_leader 1\n"), "{led}");
    // The follower exports no such series, so `sum` over the replicas is the leader's value.
    assert!(followed.contains("\nscheduler_leader 0\n"), "{followed}");
    for family in ["job_queue_backlog{", "job_queue_oldest_age_seconds{"] {
        assert!(!followed.contains(family), "{family} in:\n{followed}");
    }
    let (status,): (String,) = sqlx::query_as("SELECT status FROM jobs WHERE id = $1")
        .bind(admitted.job_id)
        .fetch_one(app.pool())
        .await
        .expect("job row");
    assert_eq!(status, "queued", "nothing took the job");
    app.allow_queued_jobs("no worker runs: the queued checkout is what the metric reports");
}

#[test]
fn a_database_that_does_not_answer_leaves_the_backlog_out_of_a_scrape_that_still_answers() {
    // Arrange: a leader whose database does not exist (the ticks need none, so it starts).
    let database_url = format!(
        "{}/no_such_database_{}",
        test_support::admin_database_url()
            .rsplit_once('/')
            .expect("a URL with a database")
            .0,
        uuid::Uuid::new_v4().simple()
    );
    let mut leader = replica(&database_url, &unique_prefix());
    leader.wait_for_message("became scheduler leader", START);

    // Act
    let text = leader.scrape("/metrics");

    // Assert
    assert!(text.contains("\nscheduler_leader 1\n"), "{text}");
    assert!(text.contains("# TYPE job_queue_backlog gauge\n"), "{text}");
    assert!(!text.contains("job_queue_backlog{"), "{text}");
    assert!(!text.contains("job_queue_oldest_age_seconds{"), "{text}");
    eventually_blocking("the warning", Duration::from_secs(5), || {
        leader.drain();
        if leader.logged("could not read the queue backlog") {
            Ok(())
        } else {
            Err(format!("output: {:#?}", leader.output))
        }
    });
}
