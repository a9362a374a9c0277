//! The sweeps that repair, run inline against a private database and Redis prefix:
//! requeue_stale recovers work whose push was lost, reconcile_stock fixes corrupted gate
//! counters.

use apalis_redis::Config;
use serde_json::json;
use shared::jobs::Job as _;
use shared::{
    checkout, db, jobs, metrics,
    queue::JobTask,
    sweep::{self, SweepDeps},
};
use test_support::TestApp;
use uuid::Uuid;

use crate::fleet::ready_buyer;

/// What the sweeps need, from the app under test.
pub fn deps(app: &TestApp) -> SweepDeps {
    SweepDeps {
        pool: app.pool().clone(),
        redis: app.redis.clone(),
        prefix: app.settings.redis_prefix.clone(),
        worker: app.settings.worker.clone(),
        settings: app.settings.sweeps.clone(),
    }
}

/// The apalis configuration of a queue of the app under test.
pub fn queue_config(app: &TestApp, job: &str) -> Config {
    shared::queue::redis_config(&app.settings.redis_prefix, job, &app.settings.worker)
}

/// Moves a row's `updated_at` into the past (the trigger would reset it on a plain UPDATE).
async fn backdate(app: &TestApp, table: &str, id: &str, secs: u32) {
    let mut tx = app.pool().begin().await.expect("begin");
    for sql in [
        format!("ALTER TABLE {table} DISABLE TRIGGER {table}_set_updated_at"),
        format!(
            "UPDATE {table} SET updated_at = now() - make_interval(secs => {secs}) WHERE id::text = '{id}'"
        ),
        format!("ALTER TABLE {table} ENABLE TRIGGER {table}_set_updated_at"),
    ] {
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .execute(&mut *tx)
            .await
            .expect("backdate");
    }
    tx.commit().await.expect("commit");
}

/// The payloads waiting in a queue's data hash.
async fn queued_payloads(app: &TestApp, job: &str) -> Vec<serde_json::Value> {
    let values: Vec<String> = redis::cmd("HVALS")
        .arg(queue_config(app, job).job_data_hash())
        .query_async(&mut app.redis.clone())
        .await
        .expect("HVALS");
    values
        .iter()
        .map(|v| serde_json::from_str(v).expect("JSON task"))
        .collect()
}

/// A checkout recorded in Postgres but never pushed (as if the push after the commit failed).
async fn unpushed_checkout(app: &TestApp) -> Uuid {
    let (token, address, _) = ready_buyer(app).await;
    let me = app.get("/api/v1/users/me", Some(&token)).await;
    let buyer: Uuid = me.body["id"].as_str().expect("id").parse().expect("uuid");
    let address: Uuid = address.parse().expect("uuid");
    let rules = checkout::AdmitRules::from_settings(&app.settings);
    let admitted = checkout::admit(
        app.pool(),
        &app.state.gate,
        &rules,
        buyer,
        "buyer",
        address,
        "k-1",
    )
    .await
    .expect("admitted");
    admitted.job_id
}

#[tokio::test]
async fn requeue_stale_pushes_again_a_job_whose_push_was_lost() {
    // Arrange: an unpushed checkout, quiet for longer than the grace period.
    let app = TestApp::spawn().await;
    let job = unpushed_checkout(&app).await;
    assert!(queued_payloads(&app, jobs::Checkout::NAME).await.is_empty());
    backdate(&app, "jobs", &job.to_string(), 31).await;

    // Act
    let first = sweep::requeue_stale(&deps(&app)).await.expect("sweep");
    let second = sweep::requeue_stale(&deps(&app)).await.expect("sweep");

    // Assert: pushed once onto its queue; the next sweep leaves it alone for a grace period.
    assert_eq!(first.jobs, 1);
    assert_eq!(second.jobs, 0);
    let payloads = queued_payloads(&app, jobs::Checkout::NAME).await;
    assert_eq!(payloads, vec![json!(JobTask::new(job))]);
    assert_eq!(app.run_checkout_jobs().await.len(), 1);
}

#[tokio::test]
async fn requeue_stale_leaves_fresh_retrying_and_leased_jobs_alone_but_takes_over_dead_leases() {
    let app = TestApp::spawn().await;
    let job = unpushed_checkout(&app).await;
    let id = job.to_string();
    let set = |sql: &'static str| {
        let pool = app.pool().clone();
        async move {
            sqlx::query(sql)
                .bind(job)
                .execute(&pool)
                .await
                .expect("update job");
        }
    };

    // Fresh: changed 10 s ago.
    backdate(&app, "jobs", &id, 10).await;
    assert_eq!(sweep::requeue_stale(&deps(&app)).await.unwrap().jobs, 0);
    // Waiting for a retry whose backoff has not run out (due in a minute).
    set(
        "UPDATE jobs SET attempts = 1, error_code = 'payment_unavailable',
                retry_at = now() + interval '60 s' WHERE id = $1",
    )
    .await;
    backdate(&app, "jobs", &id, 120).await;
    assert_eq!(sweep::requeue_stale(&deps(&app)).await.unwrap().jobs, 0);
    // A retry due only 10 s ago may still be on its way: within the grace.
    set("UPDATE jobs SET retry_at = now() - interval '10 s' WHERE id = $1").await;
    backdate(&app, "jobs", &id, 120).await;
    assert_eq!(sweep::requeue_stale(&deps(&app)).await.unwrap().jobs, 0);
    // A retry overdue by more than the grace: its task was lost (e.g. Redis emptied).
    set("UPDATE jobs SET retry_at = now() - interval '25 s' WHERE id = $1").await;
    backdate(&app, "jobs", &id, 120).await;
    assert_eq!(sweep::requeue_stale(&deps(&app)).await.unwrap().jobs, 1);
    assert_eq!(queued_payloads(&app, jobs::Checkout::NAME).await.len(), 1);
    // Running under a live lease.
    set("UPDATE jobs SET status = 'running', lease_expires_at = now() + interval '10 s' WHERE id = $1")
        .await;
    backdate(&app, "jobs", &id, 120).await;
    assert_eq!(sweep::requeue_stale(&deps(&app)).await.unwrap().jobs, 0);
    // Running under a lease that ran out a minute ago: its worker is gone.
    set("UPDATE jobs SET lease_expires_at = now() - interval '60 s' WHERE id = $1").await;
    backdate(&app, "jobs", &id, 120).await;
    assert_eq!(sweep::requeue_stale(&deps(&app)).await.unwrap().jobs, 1);
    assert_eq!(queued_payloads(&app, jobs::Checkout::NAME).await.len(), 2);
}

#[tokio::test]
async fn requeue_stale_pushes_again_an_unprocessed_webhook_event() {
    let app = TestApp::spawn().await;
    let mut conn = app.pool().acquire().await.expect("connection");
    let payload = json!({ "id": "evt_lost", "type": "payment_intent.succeeded" });
    db::webhook_events::insert(
        &mut conn,
        "evt_lost",
        "payment_intent.succeeded",
        "pi_x",
        &payload,
    )
    .await
    .expect("insert event");
    drop(conn);
    backdate(&app, "webhook_events", "evt_lost", 31).await;

    let report = sweep::requeue_stale(&deps(&app)).await.expect("sweep");

    assert_eq!(report.webhook_events, 1);
    let payloads = queued_payloads(&app, jobs::PaymentEvent::NAME).await;
    assert_eq!(payloads, vec![json!({ "event_id": "evt_lost" })]);
}

#[tokio::test]
async fn a_webhook_event_cut_off_mid_delivery_is_pushed_again_after_the_grace_alone() {
    // Arrange: an event one delivery claimed (attempts = 1) and never finished (its worker was
    // killed: no error recorded, no retry scheduled), quiet for just over the grace.
    let app = TestApp::spawn().await;
    let mut conn = app.pool().acquire().await.expect("connection");
    let payload = json!({ "id": "evt_cut", "type": "payment_intent.succeeded" });
    db::webhook_events::insert(
        &mut conn,
        "evt_cut",
        "payment_intent.succeeded",
        "pi_x",
        &payload,
    )
    .await
    .expect("insert event");
    db::webhook_events::claim(&mut conn, "evt_cut")
        .await
        .expect("claim");
    drop(conn);
    backdate(&app, "webhook_events", "evt_cut", 21).await;

    // Act
    let report = sweep::requeue_stale(&deps(&app)).await.expect("sweep");

    // Assert: found like a never-delivered event, not after a long retry grace.
    assert_eq!(report.webhook_events, 1);
    let payloads = queued_payloads(&app, jobs::PaymentEvent::NAME).await;
    assert_eq!(payloads, vec![json!({ "event_id": "evt_cut" })]);
}

#[tokio::test]
async fn a_failed_webhook_delivery_is_left_to_its_backoff_until_the_retry_is_overdue() {
    let app = TestApp::spawn().await;
    let mut conn = app.pool().acquire().await.expect("connection");
    let payload = json!({ "id": "evt_retry", "type": "payment_intent.succeeded" });
    db::webhook_events::insert(
        &mut conn,
        "evt_retry",
        "payment_intent.succeeded",
        "pi_x",
        &payload,
    )
    .await
    .expect("insert event");
    db::webhook_events::claim(&mut conn, "evt_retry")
        .await
        .expect("claim");
    let backoff = std::time::Duration::from_secs(60);
    db::webhook_events::record_error(&mut conn, "evt_retry", "stripe down", backoff)
        .await
        .expect("record error");
    drop(conn);
    backdate(&app, "webhook_events", "evt_retry", 120).await;

    assert_eq!(
        sweep::requeue_stale(&deps(&app))
            .await
            .unwrap()
            .webhook_events,
        0,
        "the retry is not due yet"
    );
    sqlx::query(
        "UPDATE webhook_events SET retry_at = now() - interval '25 s' WHERE id = 'evt_retry'",
    )
    .execute(app.pool())
    .await
    .expect("make the retry overdue");
    backdate(&app, "webhook_events", "evt_retry", 120).await;
    assert_eq!(
        sweep::requeue_stale(&deps(&app))
            .await
            .unwrap()
            .webhook_events,
        1,
        "an overdue retry's task was lost"
    );
}

#[tokio::test]
async fn reconcile_stock_fixes_corrupted_counters_and_reports_the_drift() {
    // Arrange: 5 lamps, 2 of them admitted by a checkout not processed yet (truth: 3); a second
    // listing of 4 whose counter says 0; a counter left behind by a listing that is gone.
    let app = TestApp::spawn().await;
    let (token, address, lamp) = ready_buyer(&app).await;
    let resp = app.checkout(&token, &address, "k-1").await;
    assert_eq!(resp.status.as_u16(), 202, "{}", resp.body);
    let (_, seller) = app.signed_up("other_seller").await;
    let chair = app.create_listing(&seller, "Chair", 9_000, 4).await;
    let chair: Uuid = chair["id"].as_str().expect("id").parse().expect("uuid");
    let gone = Uuid::now_v7();
    let gate = &app.state.gate;
    gate.set(&[(lamp, 100), (chair, 0), (gone, 7)])
        .await
        .expect("corrupt");

    // Act
    let report = sweep::reconcile_stock(&deps(&app))
        .await
        .expect("reconcile");

    // Assert
    assert_eq!(gate.counter(lamp).await.unwrap(), Some(3));
    assert_eq!(gate.counter(chair).await.unwrap(), Some(4));
    assert_eq!(gate.counter(gone).await.unwrap(), None);
    assert_eq!((report.checked, report.drifted, report.skipped), (3, 3, 0));
    assert_eq!((report.over_units, report.under_units), (97 + 7, 4));
    let text = metrics::render(metrics::WORKER_FAMILIES);
    assert!(
        text.contains("stock_gate_drift_units{direction=\"over\"}"),
        "{text}"
    );
    // A second run finds nothing to fix.
    let again = sweep::reconcile_stock(&deps(&app))
        .await
        .expect("reconcile");
    assert_eq!((again.checked, again.drifted), (2, 0));
    app.allow_queued_jobs("the admitted checkout not processed yet is what the sweep counts");
}
