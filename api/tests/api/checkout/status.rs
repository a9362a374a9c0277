//! Job status: visible to its owner only, and a long poll that wakes when the job finishes.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use poem::http::StatusCode;
use serde_json::Value;
use shared::checkout::{self, ProcessOutcome};
use test_support::{
    TestApp,
    stripe::{CreateIntent, stripe_app},
};
use uuid::Uuid;
use wiremock::{
    Mock, MockServer,
    matchers::{method, path},
};

use super::{accepted_job, listing};
use crate::helpers::assert_error;

// ---------------------------------------------------------------------------------------------
// 10. Job status.

#[tokio::test]
async fn job_status_is_visible_to_its_owner_only() {
    let app = TestApp::spawn().await;
    let (_, seller) = app.signed_up("seller").await;
    let l = listing(&app.create_listing(&seller, "Vase", 2_000, 2).await);
    let (_, buyer, address) = app.buyer("buyer").await;
    let (_, stranger) = app.signed_up("stranger").await;
    app.add_to_cart(&buyer, &l, 1).await;
    let job_id = accepted_job(&app.checkout(&buyer, &address, "k").await);
    let url = format!("/api/v1/jobs/{job_id}");

    let queued = app.get(&url, Some(&buyer)).await;
    assert_eq!(queued.status, StatusCode::OK, "{}", queued.body);
    let mut fields: Vec<&str> = queued
        .body
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    fields.sort_unstable();
    for name in [
        "attempts",
        "created_at",
        "error",
        "id",
        "kind",
        "result",
        "status",
        "updated_at",
    ] {
        assert!(fields.contains(&name), "no {name} in {}", queued.body);
    }
    assert_eq!(queued.body["id"], job_id.to_string());
    assert_eq!(queued.body["kind"], "checkout");
    assert_eq!(queued.body["status"], "queued");
    assert_eq!(queued.body["attempts"], 0);
    assert_eq!(queued.body["result"], Value::Null);
    assert_eq!(queued.body["error"], Value::Null);

    app.run_checkout_jobs().await;
    let done = app.get(&url, Some(&buyer)).await;
    assert_eq!(done.body["status"], "succeeded");
    assert_eq!(done.body["attempts"], 1);
    assert!(done.body["result"]["order_id"].is_string());
    assert!(done.body["result"]["client_secret"].is_string());
    assert_eq!(done.body["error"], Value::Null);

    assert_error(
        &app.get(&url, Some(&stranger)).await,
        StatusCode::NOT_FOUND,
        "job_not_found",
    );
    assert_error(
        &app.get(&url, None).await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    );
    assert_error(
        &app.get(&format!("/api/v1/jobs/{}", Uuid::now_v7()), Some(&buyer))
            .await,
        StatusCode::NOT_FOUND,
        "job_not_found",
    );
    let too_long = app.get(&format!("{url}?wait=31"), Some(&buyer)).await;
    assert_error(
        &too_long,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    );
    assert!(too_long.body["error"]["details"]["fields"]["wait"].is_string());
    app.assert_stock_invariant().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_long_poll_wakes_when_the_job_finishes() {
    // The payment provider takes a while, so the job cannot finish before the long-poll has
    // read its row: the answer can only come early through the completion announcement.
    const STRIPE_DELAY: Duration = Duration::from_millis(1_500);
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/payment_intents"))
        .respond_with(CreateIntent::after(STRIPE_DELAY))
        .mount(&server)
        .await;
    let app = Arc::new(stripe_app(&server).await);
    let (_, seller) = app.signed_up("seller").await;
    let l = listing(&app.create_listing(&seller, "Vase", 2_000, 2).await);
    let (_, buyer, address) = app.buyer("buyer").await;
    app.add_to_cart(&buyer, &l, 1).await;
    let job_id = accepted_job(&app.checkout(&buyer, &address, "k").await);
    app.job_events_subscribed().await;

    let started = Instant::now();
    let poll = tokio::spawn({
        let app = Arc::clone(&app);
        let url = format!("/api/v1/jobs/{job_id}?wait=10");
        async move {
            let resp = app.get(&url, Some(&buyer)).await;
            (resp, started.elapsed())
        }
    });
    let outcome = checkout::process(&app.checkout_deps(), job_id)
        .await
        .expect("run");
    let (resp, elapsed) = poll.await.expect("long-poll task");

    assert!(matches!(outcome, ProcessOutcome::Succeeded { .. }));
    assert_eq!(resp.status, StatusCode::OK, "{}", resp.body);
    assert_eq!(resp.body["status"], "succeeded", "{}", resp.body);
    assert!(resp.body["result"]["client_secret"].is_string());
    assert!(
        elapsed < Duration::from_secs(5),
        "woken by the announcement, not the 10 s timeout: {elapsed:?}"
    );
    assert!(
        elapsed >= STRIPE_DELAY,
        "it answered only once the job was done: {elapsed:?}"
    );
    app.assert_stock_invariant().await;
}
