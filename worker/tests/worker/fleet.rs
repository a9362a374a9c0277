//! Setting up real work for the worker binary: an in-process api (test-support) over a private
//! database and Redis prefix, a checkout accepted by it, and polling its job row.

use std::time::Duration;

use poem::http::StatusCode;
use secrecy::SecretString;
use test_support::{TestApp, eventually_every};
use uuid::Uuid;

use crate::helpers::WorkerProcess;

/// The api in Stripe mode, talking to `stripe_base`.
pub async fn stripe_app(stripe_base: &str) -> TestApp {
    let base = stripe_base.to_owned();
    TestApp::spawn_with(move |s| {
        s.stripe.mode = shared::config::PaymentMode::Stripe;
        s.stripe.secret_key = Some(SecretString::from("sk_test_fleet"));
        s.stripe.api_base = Some(base);
    })
    .await
}

/// A buyer with a verified address and a cart holding 2 of a listing of 5; returns the
/// buyer's token, the address and the listing.
pub async fn ready_buyer(app: &TestApp) -> (String, String, Uuid) {
    let (_, seller) = app.signed_up("seller").await;
    let listing = app.create_listing(&seller, "Lamp", 2_500, 5).await;
    let listing_id = listing["id"].as_str().expect("listing id").to_owned();
    let (_, token, address) = app.buyer("buyer").await;
    app.add_to_cart(&token, &listing_id, 2).await;
    (token, address, listing_id.parse().expect("uuid"))
}

/// Checks out the buyer's cart through the api (which records the job and pushes it).
pub async fn checkout(app: &TestApp, token: &str, address: &str) -> Uuid {
    let resp = app.checkout(token, address, "fleet-1").await;
    assert_eq!(resp.status, StatusCode::ACCEPTED, "{}", resp.body);
    resp.body["job_id"]
        .as_str()
        .and_then(|id| id.parse().ok())
        .expect("job id")
}

/// A worker binary on the app's database and Redis prefix, with `overrides` on top.
pub fn spawn_worker(app: &TestApp, overrides: &[(&str, &str)]) -> WorkerProcess {
    let stripe_base = app.settings.stripe.api_base.clone().unwrap_or_default();
    let mut vars = vec![
        ("DATABASE_URL", app.settings.database_url.as_str()),
        ("REDIS_PREFIX", app.settings.redis_prefix.as_str()),
        ("WORKER_QUEUES", "checkout"),
        ("STRIPE_SECRET_KEY", "sk_test_fleet"),
        ("STRIPE_API_BASE", stripe_base.as_str()),
    ];
    vars.extend_from_slice(overrides);
    WorkerProcess::spawn(&vars)
}

/// `(status, attempts, lease seconds left)` of a job row.
pub async fn job_state(app: &TestApp, id: Uuid) -> (String, i32, Option<f64>) {
    sqlx::query_as(
        "SELECT status, attempts,
                extract(epoch FROM lease_expires_at - now())::float8
         FROM jobs WHERE id = $1",
    )
    .bind(id)
    .fetch_one(app.pool())
    .await
    .expect("job row")
}

/// Polls the job row every 50 ms until `done` says so; returns when, or fails after `timeout`.
pub async fn wait_for_job(
    app: &TestApp,
    id: Uuid,
    timeout: Duration,
    done: impl Fn(&(String, i32, Option<f64>)) -> bool,
) -> (String, i32, Option<f64>) {
    let done = &done;
    let what = format!("job {id} to be done");
    eventually_every(
        &what,
        timeout,
        Duration::from_millis(50),
        move || async move {
            let state = job_state(app, id).await;
            if done(&state) { Ok(state) } else { Err(state) }
        },
    )
    .await
}

/// Orders created by the job.
pub async fn orders_of(app: &TestApp, job_id: Uuid) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM orders WHERE checkout_job_id = $1")
        .bind(job_id)
        .fetch_one(app.pool())
        .await
        .expect("count orders")
}
