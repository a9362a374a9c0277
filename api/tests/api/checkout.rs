//! Checkout end to end: admission (validation, the Redis stock gate, the job row), processing
//! (reservation, the order, the PaymentIntent) and job status, against real Postgres and Redis
//! and a local Stripe fake. Jobs run inline (`run_checkout_jobs` / `process`), never by waiting.
//!
//! The tests are grouped by behaviour in `checkout/`; the helpers here are shared with them and
//! with `orders.rs`, `checkout_rules.rs` and the payments tests.

mod admission;
mod idempotency;
mod payment_setup;
mod redelivery;
mod status;
mod stock;

use poem::http::StatusCode;
use serde_json::Value;
use shared::{
    checkout::{self, ProcessOutcome},
    db::{self, jobs::JobRow, orders::OrderRow},
};
use test_support::{TestApp, TestResponse};
use uuid::Uuid;

use crate::helpers::{count, id_of};
// ---------------------------------------------------------------------------------------------
// Helpers, shared with the tests in `checkout/`, `orders.rs`, `checkout_rules.rs` and `payments/`.

/// The job id of a 202 answer (asserting it is one).
#[track_caller]
pub fn accepted_job(resp: &TestResponse) -> Uuid {
    assert_eq!(
        resp.status,
        StatusCode::ACCEPTED,
        "checkout not accepted: {}",
        resp.body
    );
    let id = resp.body["job_id"].as_str().expect("job_id");
    assert_eq!(
        resp.body["status_url"],
        format!("/api/v1/jobs/{id}"),
        "{}",
        resp.body
    );
    id.parse().expect("job id is a uuid")
}

/// The job row.
pub async fn job_row(app: &TestApp, id: Uuid) -> JobRow {
    let mut conn = app.pool().acquire().await.expect("connection");
    db::jobs::find(&mut conn, id)
        .await
        .expect("read job")
        .expect("job exists")
}

/// The order a checkout job created, if any.
pub async fn order_of_job(app: &TestApp, job_id: Uuid) -> Option<OrderRow> {
    let mut conn = app.pool().acquire().await.expect("connection");
    db::orders::find_by_checkout_job(&mut conn, job_id)
        .await
        .expect("read order")
}

/// Number of job rows.
pub async fn jobs(app: &TestApp) -> i64 {
    count(app, "SELECT count(*) FROM jobs").await
}

/// Number of orders.
pub async fn orders(app: &TestApp) -> i64 {
    count(app, "SELECT count(*) FROM orders").await
}

/// Checks out and runs the job; returns `(job id, order id)`.
pub async fn place_order(app: &TestApp, token: &str, address: &str, key: &str) -> (Uuid, String) {
    let job_id = accepted_job(&app.checkout(token, address, key).await);
    let outcome = checkout::process(&app.checkout_deps(), job_id)
        .await
        .expect("checkout job ran");
    let ProcessOutcome::Succeeded { order_id } = outcome else {
        panic!("checkout job did not succeed: {outcome:?}");
    };
    (job_id, order_id.to_string())
}

/// Sets a listing's gate counter directly in Redis (`None` deletes it, as a flush would).
async fn set_gate(app: &TestApp, listing_id: &str, value: Option<i64>) {
    let key = app.state.gate.key(listing_id.parse().expect("listing id"));
    let cmd = match value {
        Some(v) => {
            let mut c = redis::cmd("SET");
            c.arg(&key).arg(v);
            c
        }
        None => {
            let mut c = redis::cmd("DEL");
            c.arg(&key);
            c
        }
    };
    cmd.query_async::<()>(&mut app.redis.clone())
        .await
        .expect("write gate key");
}

/// Simulates a worker that claimed the job and died: `running`, attempt counted, and a lease
/// that expires `lease_secs` from now (negative: already expired).
async fn mark_running(app: &TestApp, job_id: Uuid, lease_secs: f64) {
    sqlx::query(
        "UPDATE jobs SET status = 'running', attempts = attempts + 1,
                lease_expires_at = now() + make_interval(secs => $2)
         WHERE id = $1",
    )
    .bind(job_id)
    .bind(lease_secs)
    .execute(app.pool())
    .await
    .expect("mark job running");
}

fn listing(body: &Value) -> String {
    id_of(body)
}
