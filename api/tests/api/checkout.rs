//! Checkout end to end: admission (validation, the Redis stock gate, the job row), processing
//! (reservation, the order, the PaymentIntent) and job status, against real Postgres and Redis
//! and a local Stripe fake. Jobs run inline (`run_checkout_jobs` / `process`), never by waiting.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use futures::future::join_all;
use poem::http::StatusCode;
use serde_json::{Value, json};
use shared::{
    checkout::{self, ProcessError, ProcessOutcome},
    db::{self, jobs::JobRow, orders::OrderRow},
};
use test_support::{TestApp, TestResponse};
use uuid::Uuid;
use wiremock::{
    Mock, MockServer,
    matchers::{method, path},
};

use crate::helpers::{assert_error, count, id_of};
use test_support::stripe::{
    CreateIntent, client_secret, field, form, header, intent_id_for, requests_to, stripe_app,
    stripe_error, stripe_fake,
};

// ---------------------------------------------------------------------------------------------
// Helpers shared with `orders.rs`.

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

// ---------------------------------------------------------------------------------------------
// The happy path.

#[tokio::test]
async fn a_checkout_creates_an_order_with_a_payment_intent() {
    let app = TestApp::spawn().await;
    let (_, seller) = app.signed_up("seller").await;
    let (buyer_id, buyer) = app.signed_up("buyer").await;
    let listing = app.create_listing(&seller, "A lamp", 1_500, 3).await;
    let listing_id = listing["id"].as_str().unwrap();
    let address = app.verified_address(&buyer_id).await;
    app.add_to_cart(&buyer, listing_id, 2).await;

    let accepted = app.checkout(&buyer, &address, "key-1").await;
    assert_eq!(accepted.status, StatusCode::ACCEPTED, "{:?}", accepted.body);
    let job_id = accepted.body["job_id"].as_str().unwrap().to_owned();
    let outcomes = app.run_checkout_jobs().await;
    assert!(
        matches!(outcomes.as_slice(), [ProcessOutcome::Succeeded { .. }]),
        "{outcomes:?}"
    );

    let job = app
        .get(&format!("/api/v1/jobs/{job_id}"), Some(&buyer))
        .await;
    assert_eq!(job.body["status"], "succeeded", "{:?}", job.body);
    let order_id = job.body["result"]["order_id"].as_str().unwrap();
    assert!(job.body["result"]["client_secret"].as_str().is_some());
    let order = app
        .get(&format!("/api/v1/orders/{order_id}"), Some(&buyer))
        .await;
    assert_eq!(order.status, StatusCode::OK);
    assert_eq!(order.body["status"], "pending_payment");
    assert_eq!(order.body["total_cents"], 3_000);
    assert_eq!(order.body["lines"][0]["title"], "A lamp");
    let listing = app
        .get(&format!("/api/v1/listings/{listing_id}"), None)
        .await;
    assert_eq!(listing.body["available"], 1);
    let cart = app.get("/api/v1/cart", Some(&buyer)).await;
    assert_eq!(cart.body["items"].as_array().unwrap().len(), 0);
    assert_eq!(app.gate_counter(listing_id).await, Some(1));
    app.assert_stock_invariant().await;
}

// ---------------------------------------------------------------------------------------------
// 1. The race for the last units.

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_buyers_racing_for_ten_units_get_exactly_ten_orders() {
    const UNITS: i64 = 10;
    const BUYERS: usize = 50;
    let app = Arc::new(TestApp::spawn().await);
    let (_, seller) = app.signed_up("seller").await;
    let listing_id = listing(
        &app.create_listing(&seller, "Limited run", 2_500, UNITS)
            .await,
    );

    let setups = join_all((0..BUYERS).map(|i| {
        let app = Arc::clone(&app);
        let listing_id = listing_id.clone();
        tokio::spawn(async move {
            let (_, token, address) = app.buyer(&format!("buyer{i:02}")).await;
            app.add_to_cart(&token, &listing_id, 1).await;
            (token, address)
        })
    }))
    .await;
    let buyers: Vec<(String, String)> =
        setups.into_iter().map(|r| r.expect("setup task")).collect();

    // Every buyer presses "pay" at the same moment, each on its own task.
    let answers = join_all(buyers.into_iter().enumerate().map(|(i, (token, address))| {
        let app = Arc::clone(&app);
        tokio::spawn(async move { app.checkout(&token, &address, &format!("race-{i}")).await })
    }))
    .await;
    let answers: Vec<TestResponse> = answers
        .into_iter()
        .map(|r| r.expect("checkout task"))
        .collect();

    let accepted: Vec<&TestResponse> = answers
        .iter()
        .filter(|r| r.status == StatusCode::ACCEPTED)
        .collect();
    let refused: Vec<&TestResponse> = answers
        .iter()
        .filter(|r| r.status == StatusCode::CONFLICT)
        .collect();
    assert_eq!(accepted.len(), 10, "exactly the stock is admitted");
    assert_eq!(
        refused.len(),
        BUYERS - 10,
        "everyone else is refused: {:?}",
        answers
            .iter()
            .filter(|r| r.status != StatusCode::ACCEPTED && r.status != StatusCode::CONFLICT)
            .map(|r| (r.status, &r.body))
            .collect::<Vec<_>>()
    );
    for resp in &refused {
        assert_error(resp, StatusCode::CONFLICT, "out_of_stock");
        assert_eq!(
            resp.body["error"]["details"]["listing_ids"],
            json!([listing_id])
        );
    }
    assert_eq!(jobs(&app).await, 10, "only admitted checkouts write a job");
    assert_eq!(app.gate_counter(&listing_id).await, Some(0));

    let outcomes = app.run_checkout_jobs().await;
    assert_eq!(outcomes.len(), 10);
    assert!(
        outcomes
            .iter()
            .all(|o| matches!(o, ProcessOutcome::Succeeded { .. })),
        "{outcomes:?}"
    );
    assert_eq!(orders(&app).await, 10);
    assert_eq!(
        count(&app, "SELECT count(*) FROM jobs WHERE status = 'failed'").await,
        0
    );
    assert_eq!(
        count(&app, "SELECT count(*) FROM jobs WHERE status = 'succeeded'").await,
        10
    );
    let (quantity, reserved) = app.stock(&listing_id).await;
    assert_eq!((quantity, reserved), (10, 10));
    assert_eq!(
        app.gate_counter(&listing_id).await,
        Some(i64::from(quantity - reserved))
    );
    app.assert_stock_invariant().await;
}

// ---------------------------------------------------------------------------------------------
// 2. All lines or none.

#[tokio::test]
async fn a_cart_whose_second_line_is_short_reserves_nothing_for_the_first() {
    let app = TestApp::spawn().await;
    let (_, seller) = app.signed_up("seller").await;
    let a = listing(&app.create_listing(&seller, "Plenty", 1_000, 5).await);
    let b = listing(&app.create_listing(&seller, "Last one", 2_000, 1).await);
    assert!(a < b, "A sorts first (UUIDv7), so B is the second line");
    let (buyer_id, buyer, address) = app.buyer("buyer").await;
    let (_, rival, rival_address) = app.buyer("rival").await;
    app.add_to_cart(&buyer, &a, 2).await;
    app.add_to_cart(&buyer, &b, 1).await;
    // Someone else takes B's only unit (and one of A) first.
    app.add_to_cart(&rival, &a, 1).await;
    app.add_to_cart(&rival, &b, 1).await;
    place_order(&app, &rival, &rival_address, "rival").await;
    assert_eq!(app.gate_counter(&a).await, Some(4));
    assert_eq!(app.gate_counter(&b).await, Some(0));
    let jobs_before = jobs(&app).await;

    let resp = app.checkout(&buyer, &address, "mine").await;

    assert_error(&resp, StatusCode::CONFLICT, "out_of_stock");
    assert_eq!(resp.body["error"]["details"]["listing_ids"], json!([b]));
    assert_eq!(app.gate_counter(&a).await, Some(4), "A was not taken");
    assert_eq!(app.gate_counter(&b).await, Some(0));
    assert_eq!(app.stock(&a).await, (5, 1));
    assert_eq!(app.stock(&b).await, (1, 1));
    assert_eq!(jobs(&app).await, jobs_before, "no job row for the refusal");
    let buyer_jobs: i64 = sqlx::query_scalar("SELECT count(*) FROM jobs WHERE owner_id = $1")
        .bind(buyer_id.parse::<Uuid>().unwrap())
        .fetch_one(app.pool())
        .await
        .unwrap();
    assert_eq!(buyer_jobs, 0);
    let cart = app.get("/api/v1/cart", Some(&buyer)).await;
    assert_eq!(
        cart.body["items"].as_array().unwrap().len(),
        2,
        "the cart is kept"
    );
    app.assert_stock_invariant().await;
}

#[tokio::test]
async fn a_short_line_found_while_loading_the_gate_takes_nothing_from_the_other_lines() {
    let app = TestApp::spawn().await;
    let (_, seller) = app.signed_up("seller").await;
    let a = listing(&app.create_listing(&seller, "Plenty", 1_000, 5).await);
    let b = listing(&app.create_listing(&seller, "Scarce", 2_000, 3).await);
    let (_, buyer, address) = app.buyer("buyer").await;
    app.add_to_cart(&buyer, &a, 2).await;
    app.add_to_cart(&buyer, &b, 2).await;
    // B's units went elsewhere behind the gate's back; no counter is loaded yet.
    sqlx::query("UPDATE listings SET reserved = 2 WHERE id = $1")
        .bind(b.parse::<Uuid>().unwrap())
        .execute(app.pool())
        .await
        .unwrap();
    assert_eq!(app.gate_counter(&a).await, None);

    let resp = app.checkout(&buyer, &address, "k").await;

    assert_error(&resp, StatusCode::CONFLICT, "out_of_stock");
    assert_eq!(resp.body["error"]["details"]["listing_ids"], json!([b]));
    assert_eq!(
        app.gate_counter(&a).await,
        Some(5),
        "A's counter is loaded from Postgres but nothing is taken from it"
    );
    assert_eq!(app.gate_counter(&b).await, Some(1));
    assert_eq!(app.stock(&a).await, (5, 0));
    assert_eq!(jobs(&app).await, 0);
}

// ---------------------------------------------------------------------------------------------
// 3. Idempotency keys.

#[tokio::test]
async fn the_same_idempotency_key_twice_returns_the_same_job_and_one_order() {
    let app = TestApp::spawn().await;
    let (_, seller) = app.signed_up("seller").await;
    let l = listing(&app.create_listing(&seller, "Mug", 900, 4).await);
    let (_, buyer, address) = app.buyer("buyer").await;
    app.add_to_cart(&buyer, &l, 2).await;

    let first = accepted_job(&app.checkout(&buyer, &address, "same-key").await);
    let second = accepted_job(&app.checkout(&buyer, &address, "same-key").await);
    assert_eq!(first, second);
    assert_eq!(jobs(&app).await, 1);
    assert_eq!(app.gate_counter(&l).await, Some(2), "taken once");

    app.run_checkout_jobs().await;
    // A retry after the job finished (the cart is empty now) still answers with the same job.
    let third = accepted_job(&app.checkout(&buyer, &address, "same-key").await);
    assert_eq!(third, first);
    assert_eq!(jobs(&app).await, 1);
    assert_eq!(orders(&app).await, 1);
    assert_eq!(app.stock(&l).await, (4, 2));
    assert_eq!(app.gate_counter(&l).await, Some(2));
    app.assert_stock_invariant().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_same_idempotency_key_concurrently_creates_one_job_and_takes_the_units_once() {
    let app = Arc::new(TestApp::spawn().await);
    let (_, seller) = app.signed_up("seller").await;
    // The buyer takes the last three units and double-clicks (or the client retries) many times.
    let l = listing(&app.create_listing(&seller, "Mug", 900, 3).await);
    let (_, buyer, address) = app.buyer("buyer").await;
    app.add_to_cart(&buyer, &l, 3).await;

    let answers = join_all((0..8).map(|_| {
        let app = Arc::clone(&app);
        let (buyer, address) = (buyer.clone(), address.clone());
        tokio::spawn(async move { app.checkout(&buyer, &address, "double-click").await })
    }))
    .await;
    let ids: Vec<Uuid> = answers
        .iter()
        .map(|r| accepted_job(r.as_ref().expect("checkout task")))
        .collect();

    assert!(ids.iter().all(|id| *id == ids[0]), "{ids:?}");
    assert_eq!(jobs(&app).await, 1);
    assert_eq!(
        app.gate_counter(&l).await,
        Some(0),
        "the gate is decremented once"
    );
    let outcomes = app.run_checkout_jobs().await;
    assert!(matches!(
        outcomes.as_slice(),
        [ProcessOutcome::Succeeded { .. }]
    ));
    assert_eq!(orders(&app).await, 1);
    assert_eq!(app.stock(&l).await, (3, 3));
    assert_eq!(app.gate_counter(&l).await, Some(0));
    app.assert_stock_invariant().await;
}

#[tokio::test]
async fn the_same_idempotency_key_with_another_address_is_a_422() {
    let app = TestApp::spawn().await;
    let (_, seller) = app.signed_up("seller").await;
    let l = listing(&app.create_listing(&seller, "Mug", 900, 4).await);
    let (buyer_id, buyer, address) = app.buyer("buyer").await;
    let other_address = app.verified_address(&buyer_id).await;
    app.add_to_cart(&buyer, &l, 1).await;
    let job_id = accepted_job(&app.checkout(&buyer, &address, "k1").await);

    let resp = app.checkout(&buyer, &other_address, "k1").await;

    assert_error(
        &resp,
        StatusCode::UNPROCESSABLE_ENTITY,
        "idempotency_key_reused",
    );
    assert_eq!(jobs(&app).await, 1);
    assert_eq!(app.gate_counter(&l).await, Some(3));
    assert_eq!(job_row(&app, job_id).await.status, "queued");
    app.assert_stock_invariant().await;
}

#[tokio::test]
async fn a_checkout_without_an_idempotency_key_is_a_400() {
    let app = TestApp::spawn().await;
    let (_, seller) = app.signed_up("seller").await;
    let l = listing(&app.create_listing(&seller, "Mug", 900, 4).await);
    let (_, buyer, address) = app.buyer("buyer").await;
    app.add_to_cart(&buyer, &l, 1).await;

    let missing = app
        .post(
            "/api/v1/checkout",
            Some(&buyer),
            json!({ "address_id": address }),
        )
        .await;
    assert_error(
        &missing,
        StatusCode::BAD_REQUEST,
        "idempotency_key_required",
    );
    let too_long = app.checkout(&buyer, &address, &"k".repeat(256)).await;
    assert_error(
        &too_long,
        StatusCode::BAD_REQUEST,
        "idempotency_key_required",
    );

    assert_eq!(jobs(&app).await, 0);
    assert_eq!(app.gate_counter(&l).await, None, "the gate was not asked");
}

// ---------------------------------------------------------------------------------------------
// 4. Redelivery.

#[tokio::test]
async fn a_redelivered_job_is_skipped_and_creates_one_payment_intent() {
    let (server, _) = stripe_fake().await;
    let app = stripe_app(&server).await;
    let (_, seller) = app.signed_up("seller").await;
    let l = listing(&app.create_listing(&seller, "Kettle", 3_100, 5).await);
    let (_, buyer, address) = app.buyer("buyer").await;
    app.add_to_cart(&buyer, &l, 2).await;
    let job_id = accepted_job(&app.checkout(&buyer, &address, "k").await);
    let deps = app.checkout_deps();

    let first = checkout::process(&deps, job_id).await.expect("first run");
    let second = checkout::process(&deps, job_id).await.expect("second run");

    let ProcessOutcome::Succeeded { order_id } = first else {
        panic!("first delivery: {first:?}");
    };
    assert_eq!(second, ProcessOutcome::Skipped);
    assert_eq!(orders(&app).await, 1);
    let creates = requests_to(&server, "POST", "/v1/payment_intents").await;
    assert_eq!(creates.len(), 1, "exactly one PaymentIntent request");
    assert_eq!(
        header(&creates[0], "idempotency-key"),
        Some(format!("order-{order_id}-pi").as_str())
    );
    let fields = form(&creates[0]);
    assert_eq!(field(&fields, "amount"), Some("6200"));
    assert_eq!(field(&fields, "currency"), Some("usd"));
    assert_eq!(
        field(&fields, "metadata[order_id]"),
        Some(order_id.to_string().as_str())
    );
    let job = job_row(&app, job_id).await;
    assert_eq!(job.status, "succeeded");
    assert_eq!(
        job.attempts, 1,
        "the skipped delivery did not count an attempt"
    );
    assert_eq!(app.stock(&l).await, (5, 2));
    assert_eq!(app.gate_counter(&l).await, Some(3));
    app.assert_stock_invariant().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_simultaneous_deliveries_of_one_job_create_one_order() {
    let (server, _) = stripe_fake().await;
    let app = stripe_app(&server).await;
    let (_, seller) = app.signed_up("seller").await;
    let l = listing(&app.create_listing(&seller, "Kettle", 3_100, 5).await);
    let (_, buyer, address) = app.buyer("buyer").await;
    app.add_to_cart(&buyer, &l, 1).await;
    let job_id = accepted_job(&app.checkout(&buyer, &address, "k").await);
    let deps = app.checkout_deps();

    let (a, b) = tokio::join!(
        tokio::spawn({
            let deps = deps.clone();
            async move { checkout::process(&deps, job_id).await }
        }),
        tokio::spawn({
            let deps = deps.clone();
            async move { checkout::process(&deps, job_id).await }
        }),
    );
    let mut outcomes = vec![a.unwrap().expect("run a"), b.unwrap().expect("run b")];
    outcomes.sort_by_key(|o| matches!(o, ProcessOutcome::Skipped));

    assert!(
        matches!(
            outcomes.as_slice(),
            [ProcessOutcome::Succeeded { .. }, ProcessOutcome::Skipped]
        ),
        "{outcomes:?}"
    );
    assert_eq!(orders(&app).await, 1);
    assert_eq!(
        requests_to(&server, "POST", "/v1/payment_intents")
            .await
            .len(),
        1
    );
    app.assert_stock_invariant().await;
}

// ---------------------------------------------------------------------------------------------
// 5. A crash (or outage) between the order commit and the PaymentIntent.

#[tokio::test]
async fn an_order_cancelled_while_payment_setup_is_retried_gets_no_payment_intent() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/payment_intents"))
        .respond_with(stripe_error(
            500,
            json!({ "type": "api_error", "message": "An unknown error occurred" }),
        ))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1/payment_intents"))
        .respond_with(CreateIntent::at_once())
        .with_priority(2)
        .mount(&server)
        .await;
    let app = stripe_app(&server).await;
    let (_, seller) = app.signed_up("seller").await;
    let l = listing(&app.create_listing(&seller, "Teapot", 2_000, 4).await);
    let (_, buyer, address) = app.buyer("buyer").await;
    app.add_to_cart(&buyer, &l, 1).await;
    let job_id = accepted_job(&app.checkout(&buyer, &address, "k").await);
    let deps = app.checkout_deps();
    let first = checkout::process(&deps, job_id).await;
    assert!(
        matches!(first, Err(ProcessError::PaymentUnavailable(_))),
        "{first:?}"
    );
    let order = order_of_job(&app, job_id).await.expect("order committed");

    // The buyer gives up while the payment step waits for its retry.
    let cancelled = app
        .post(
            &format!("/api/v1/orders/{}/cancel", order.id),
            Some(&buyer),
            json!({}),
        )
        .await;
    assert_eq!(cancelled.status, StatusCode::OK, "{:?}", cancelled.body);
    let second = checkout::process(&deps, job_id).await.expect("second run");

    assert_eq!(
        second,
        ProcessOutcome::Failed {
            code: "order_closed".into()
        }
    );
    let job = job_row(&app, job_id).await;
    assert_eq!(job.status, "failed");
    assert_eq!(job.error_code.as_deref(), Some("order_closed"));
    let order = order_of_job(&app, job_id).await.expect("order kept");
    assert_eq!(order.status, "cancelled");
    assert_eq!(
        order.payment_intent_id, None,
        "no intent for a closed order"
    );
    let creates = requests_to(&server, "POST", "/v1/payment_intents").await;
    assert_eq!(creates.len(), 1, "only the failed attempt reached Stripe");
    assert_eq!(app.stock(&l).await, (4, 0));
    assert_eq!(app.gate_counter(&l).await, Some(4));
    app.assert_stock_invariant().await;
}

#[tokio::test]
async fn a_payment_outage_after_the_order_commit_is_retried_into_one_order() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/payment_intents"))
        .respond_with(stripe_error(
            500,
            json!({ "type": "api_error", "message": "An unknown error occurred" }),
        ))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1/payment_intents"))
        .respond_with(CreateIntent::at_once())
        .with_priority(2)
        .mount(&server)
        .await;
    let app = stripe_app(&server).await;
    let (_, seller) = app.signed_up("seller").await;
    let l = listing(&app.create_listing(&seller, "Kettle", 3_100, 5).await);
    let (_, buyer, address) = app.buyer("buyer").await;
    app.add_to_cart(&buyer, &l, 2).await;
    let job_id = accepted_job(&app.checkout(&buyer, &address, "k").await);
    let deps = app.checkout_deps();

    let first = checkout::process(&deps, job_id).await;
    assert!(
        matches!(first, Err(ProcessError::PaymentUnavailable(_))),
        "{first:?}"
    );
    let job = job_row(&app, job_id).await;
    assert_eq!(job.status, "queued", "back in the queue for a retry");
    assert_eq!(job.error_code.as_deref(), Some("payment_unavailable"));
    assert_eq!(job.attempts, 1);
    let order = order_of_job(&app, job_id).await.expect("order committed");
    assert_eq!(order.status, "pending_payment");
    assert_eq!(order.payment_intent_id, None);
    assert_eq!(app.stock(&l).await, (5, 2));
    let status = app
        .get(&format!("/api/v1/jobs/{job_id}"), Some(&buyer))
        .await;
    assert_eq!(status.body["status"], "queued");
    assert_eq!(
        status.body["error"],
        Value::Null,
        "a retrying job shows no error"
    );

    let second = checkout::process(&deps, job_id).await.expect("second run");

    assert_eq!(second, ProcessOutcome::Succeeded { order_id: order.id });
    assert_eq!(orders(&app).await, 1);
    let creates = requests_to(&server, "POST", "/v1/payment_intents").await;
    assert_eq!(creates.len(), 2);
    let key = format!("order-{}-pi", order.id);
    for request in &creates {
        assert_eq!(header(request, "idempotency-key"), Some(key.as_str()));
    }
    let intent_id = intent_id_for(&order.id.to_string());
    let job = job_row(&app, job_id).await;
    assert_eq!(job.status, "succeeded");
    assert_eq!(job.attempts, 2);
    assert_eq!(
        job.result,
        Some(json!({ "order_id": order.id, "client_secret": client_secret(&intent_id) }))
    );
    let order = order_of_job(&app, job_id).await.unwrap();
    assert_eq!(order.payment_intent_id.as_deref(), Some(intent_id.as_str()));
    assert_eq!(app.stock(&l).await, (5, 2), "reserved once");
    assert_eq!(app.gate_counter(&l).await, Some(3));
    app.assert_stock_invariant().await;
}

// ---------------------------------------------------------------------------------------------
// 6. Leases.

#[tokio::test]
async fn a_job_whose_worker_died_is_claimed_again_after_its_lease_expires() {
    let app = TestApp::spawn().await;
    let (_, seller) = app.signed_up("seller").await;
    let l = listing(&app.create_listing(&seller, "Chair", 4_000, 2).await);
    let (_, buyer, address) = app.buyer("buyer").await;
    app.add_to_cart(&buyer, &l, 1).await;
    let job_id = accepted_job(&app.checkout(&buyer, &address, "k").await);
    mark_running(&app, job_id, -60.0).await;
    assert!(
        app.run_checkout_jobs().await.is_empty(),
        "not queued any more"
    );

    let outcome = checkout::process(&app.checkout_deps(), job_id)
        .await
        .expect("run");

    assert!(
        matches!(outcome, ProcessOutcome::Succeeded { .. }),
        "{outcome:?}"
    );
    let job = job_row(&app, job_id).await;
    assert_eq!(job.status, "succeeded");
    assert_eq!(job.attempts, 2);
    assert_eq!(orders(&app).await, 1);
    assert_eq!(app.stock(&l).await, (2, 1));
    assert_eq!(app.gate_counter(&l).await, Some(1));
    app.assert_stock_invariant().await;
}

#[tokio::test]
async fn a_job_whose_worker_died_after_creating_the_order_gets_no_second_order() {
    let server = MockServer::start().await;
    // The first worker's PaymentIntent call never got an answer it could use.
    Mock::given(method("POST"))
        .and(path("/v1/payment_intents"))
        .respond_with(stripe_error(
            503,
            json!({ "type": "api_error", "message": "Service unavailable" }),
        ))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1/payment_intents"))
        .respond_with(CreateIntent::at_once())
        .with_priority(2)
        .mount(&server)
        .await;
    let app = stripe_app(&server).await;
    let (_, seller) = app.signed_up("seller").await;
    let l = listing(&app.create_listing(&seller, "Chair", 4_000, 2).await);
    let (_, buyer, address) = app.buyer("buyer").await;
    app.add_to_cart(&buyer, &l, 1).await;
    let job_id = accepted_job(&app.checkout(&buyer, &address, "k").await);
    let deps = app.checkout_deps();
    assert!(checkout::process(&deps, job_id).await.is_err());
    let order = order_of_job(&app, job_id).await.expect("order committed");
    // ...and it died holding the job instead of handing it back.
    sqlx::query(
        "UPDATE jobs SET status = 'running', lease_expires_at = now() - interval '1 minute'
         WHERE id = $1",
    )
    .bind(job_id)
    .execute(app.pool())
    .await
    .unwrap();

    let outcome = checkout::process(&deps, job_id).await.expect("run");

    assert_eq!(outcome, ProcessOutcome::Succeeded { order_id: order.id });
    assert_eq!(orders(&app).await, 1);
    assert_eq!(app.stock(&l).await, (2, 1));
    let creates = requests_to(&server, "POST", "/v1/payment_intents").await;
    assert_eq!(creates.len(), 2);
    assert!(
        creates.iter().all(
            |r| header(r, "idempotency-key") == Some(format!("order-{}-pi", order.id).as_str())
        )
    );
    app.assert_stock_invariant().await;
}

#[tokio::test]
async fn a_job_held_under_a_live_lease_is_skipped() {
    let app = TestApp::spawn().await;
    let (_, seller) = app.signed_up("seller").await;
    let l = listing(&app.create_listing(&seller, "Chair", 4_000, 2).await);
    let (_, buyer, address) = app.buyer("buyer").await;
    app.add_to_cart(&buyer, &l, 1).await;
    let job_id = accepted_job(&app.checkout(&buyer, &address, "k").await);
    mark_running(&app, job_id, 60.0).await;

    let outcome = checkout::process(&app.checkout_deps(), job_id)
        .await
        .expect("run");

    assert_eq!(outcome, ProcessOutcome::Skipped);
    let job = job_row(&app, job_id).await;
    assert_eq!(job.status, "running");
    assert_eq!(job.attempts, 1, "the skipped delivery counted nothing");
    assert_eq!(orders(&app).await, 0);
    assert_eq!(app.stock(&l).await, (2, 0));
    assert_eq!(
        app.gate_counter(&l).await,
        Some(1),
        "the unit stays held for the job"
    );
    app.assert_stock_invariant().await;
}

// ---------------------------------------------------------------------------------------------
// 7. A permanent payment refusal.

#[tokio::test]
async fn a_permanent_payment_refusal_cancels_the_order_and_releases_the_stock() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/payment_intents"))
        .respond_with(stripe_error(
            400,
            json!({
                "type": "invalid_request_error",
                "code": "amount_too_small",
                "param": "amount",
                "message": "Amount must be at least $0.50 usd",
                "doc_url": "https://stripe.com/docs/error-codes/amount-too-small"
            }),
        ))
        .mount(&server)
        .await;
    let app = stripe_app(&server).await;
    let (_, seller) = app.signed_up("seller").await;
    let l = listing(&app.create_listing(&seller, "Sticker", 10, 3).await);
    let (_, buyer, address) = app.buyer("buyer").await;
    app.add_to_cart(&buyer, &l, 2).await;
    let job_id = accepted_job(&app.checkout(&buyer, &address, "k").await);
    assert_eq!(app.gate_counter(&l).await, Some(1));

    let outcome = checkout::process(&app.checkout_deps(), job_id)
        .await
        .expect("run");

    assert_eq!(
        outcome,
        ProcessOutcome::Failed {
            code: "payment_failed".into()
        }
    );
    let job = job_row(&app, job_id).await;
    assert_eq!(job.status, "failed");
    assert_eq!(job.error_code.as_deref(), Some("payment_failed"));
    assert!(
        job.error_message
            .as_deref()
            .is_some_and(|m| m.contains("amount_too_small")),
        "{:?}",
        job.error_message
    );
    let order = order_of_job(&app, job_id).await.expect("order");
    assert_eq!(order.status, "cancelled");
    assert_eq!(order.status_reason.as_deref(), Some("payment_setup_failed"));
    assert_eq!(app.stock(&l).await, (3, 0));
    assert_eq!(
        app.gate_counter(&l).await,
        Some(3),
        "the gate got its units back"
    );
    let status = app
        .get(&format!("/api/v1/jobs/{job_id}"), Some(&buyer))
        .await;
    assert_eq!(status.body["status"], "failed");
    assert_eq!(status.body["error"]["code"], "payment_failed");
    assert_eq!(
        requests_to(&server, "POST", "/v1/payment_intents")
            .await
            .len(),
        1,
        "a permanent refusal is not retried"
    );
    app.assert_stock_invariant().await;
}

// ---------------------------------------------------------------------------------------------
// 8. A wrong gate.

#[tokio::test]
async fn a_flushed_gate_is_reloaded_from_postgres_counting_queued_checkouts() {
    let app = TestApp::spawn().await;
    let (_, seller) = app.signed_up("seller").await;
    let l = listing(&app.create_listing(&seller, "Lamp", 1_000, 5).await);
    let (_, first, first_address) = app.buyer("first").await;
    let (_, second, second_address) = app.buyer("second").await;
    let (_, third, third_address) = app.buyer("third").await;
    app.add_to_cart(&first, &l, 2).await;
    app.add_to_cart(&second, &l, 1).await;
    app.add_to_cart(&third, &l, 1).await;
    place_order(&app, &first, &first_address, "k").await; // reserved 2
    accepted_job(&app.checkout(&second, &second_address, "k").await); // queued, 1 unit
    assert_eq!(app.gate_counter(&l).await, Some(2));

    set_gate(&app, &l, None).await; // Redis lost the key
    accepted_job(&app.checkout(&third, &third_address, "k").await);

    // Reloaded as 5 - 2 reserved - 1 queued = 2, then this checkout's unit taken.
    assert_eq!(app.gate_counter(&l).await, Some(1));
    let outcomes = app.run_checkout_jobs().await;
    assert_eq!(outcomes.len(), 2);
    assert!(
        outcomes
            .iter()
            .all(|o| matches!(o, ProcessOutcome::Succeeded { .. }))
    );
    let (quantity, reserved) = app.stock(&l).await;
    assert_eq!(reserved, 4);
    assert_eq!(
        app.gate_counter(&l).await,
        Some(i64::from(quantity - reserved))
    );
    app.assert_stock_invariant().await;
}

#[tokio::test]
async fn a_gate_that_admits_too_much_cannot_oversell() {
    let app = TestApp::spawn().await;
    let (_, seller) = app.signed_up("seller").await;
    let l = listing(&app.create_listing(&seller, "Rare", 5_000, 2).await);
    let mut buyers = Vec::new();
    for i in 0..5 {
        let (_, token, address) = app.buyer(&format!("buyer{i}")).await;
        app.add_to_cart(&token, &l, 1).await;
        buyers.push((token, address));
    }
    set_gate(&app, &l, Some(1_000)).await;

    let mut job_ids = Vec::new();
    for (token, address) in &buyers {
        job_ids.push(accepted_job(&app.checkout(token, address, "k").await));
    }
    assert_eq!(app.gate_counter(&l).await, Some(995));
    let outcomes = app.run_checkout_jobs().await;

    let succeeded = outcomes
        .iter()
        .filter(|o| matches!(o, ProcessOutcome::Succeeded { .. }))
        .count();
    let out_of_stock = outcomes
        .iter()
        .filter(|o| {
            **o == ProcessOutcome::Failed {
                code: "out_of_stock".into(),
            }
        })
        .count();
    assert_eq!((succeeded, out_of_stock), (2, 3), "{outcomes:?}");
    assert_eq!(orders(&app).await, 2);
    assert_eq!(
        count(
            &app,
            "SELECT count(*) FROM jobs WHERE status = 'failed' AND error_code = 'out_of_stock'"
        )
        .await,
        3
    );
    assert_eq!(app.stock(&l).await, (2, 2));
    assert_eq!(
        app.gate_counter(&l).await,
        Some(998),
        "the failed jobs gave their units back"
    );
    // The buyers whose jobs failed see why.
    let failed = job_ids.last().unwrap();
    let status = app
        .get(&format!("/api/v1/jobs/{failed}"), Some(&buyers[4].0))
        .await;
    assert_eq!(status.body["status"], "failed");
    assert_eq!(status.body["error"]["code"], "out_of_stock");
    app.assert_stock_invariant().await;
}

#[tokio::test]
async fn a_restocked_listing_can_be_checked_out_again() {
    let app = TestApp::spawn().await;
    let (_, seller) = app.signed_up("seller").await;
    let l = listing(&app.create_listing(&seller, "Print", 3_000, 1).await);
    let (_, first, first_address) = app.buyer("first").await;
    let (_, second, second_address) = app.buyer("second").await;
    app.add_to_cart(&first, &l, 1).await;
    place_order(&app, &first, &first_address, "k").await;
    assert_eq!(app.gate_counter(&l).await, Some(0));

    let restocked = crate::helpers::patch(
        &app,
        &format!("/api/v1/listings/{l}"),
        Some(&seller),
        json!({ "quantity": 4 }),
    )
    .await;
    assert_eq!(restocked.status, StatusCode::OK, "{}", restocked.body);
    assert_eq!(restocked.body["available"], 3);
    app.add_to_cart(&second, &l, 2).await;

    accepted_job(&app.checkout(&second, &second_address, "k").await);

    assert_eq!(app.gate_counter(&l).await, Some(1));
    app.run_checkout_jobs().await;
    assert_eq!(app.stock(&l).await, (4, 3));
    assert_eq!(app.gate_counter(&l).await, Some(1));
    app.assert_stock_invariant().await;
}

// ---------------------------------------------------------------------------------------------
// 9. The attempts cap.

#[tokio::test]
async fn a_job_out_of_attempts_fails_and_returns_its_units_to_the_gate() {
    let app = TestApp::spawn().await;
    let (_, seller) = app.signed_up("seller").await;
    let l = listing(&app.create_listing(&seller, "Desk", 9_000, 3).await);
    let (_, buyer, address) = app.buyer("buyer").await;
    app.add_to_cart(&buyer, &l, 2).await;
    let job_id = accepted_job(&app.checkout(&buyer, &address, "k").await);
    assert_eq!(app.gate_counter(&l).await, Some(1));
    sqlx::query("UPDATE jobs SET attempts = max_attempts WHERE id = $1")
        .bind(job_id)
        .execute(app.pool())
        .await
        .unwrap();

    let outcomes = app.run_checkout_jobs().await;

    assert_eq!(
        outcomes,
        [ProcessOutcome::Failed {
            code: "attempts_exhausted".into()
        }]
    );
    let job = job_row(&app, job_id).await;
    assert_eq!(job.status, "failed");
    assert_eq!(job.error_code.as_deref(), Some("attempts_exhausted"));
    assert_eq!(job.attempts, checkout::MAX_ATTEMPTS + 1);
    assert_eq!(orders(&app).await, 0);
    assert_eq!(app.stock(&l).await, (3, 0));
    assert_eq!(app.gate_counter(&l).await, Some(3));
    app.assert_stock_invariant().await;
}

#[tokio::test]
async fn a_job_out_of_attempts_after_creating_its_order_cancels_the_order() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/payment_intents"))
        .respond_with(stripe_error(
            500,
            json!({ "type": "api_error", "message": "An unknown error occurred" }),
        ))
        .mount(&server)
        .await;
    let app = stripe_app(&server).await;
    let (_, seller) = app.signed_up("seller").await;
    let l = listing(&app.create_listing(&seller, "Desk", 9_000, 3).await);
    let (_, buyer, address) = app.buyer("buyer").await;
    app.add_to_cart(&buyer, &l, 2).await;
    let job_id = accepted_job(&app.checkout(&buyer, &address, "k").await);
    let deps = app.checkout_deps();
    assert!(checkout::process(&deps, job_id).await.is_err());
    assert_eq!(app.stock(&l).await, (3, 2));
    sqlx::query("UPDATE jobs SET attempts = max_attempts WHERE id = $1")
        .bind(job_id)
        .execute(app.pool())
        .await
        .unwrap();

    let outcome = checkout::process(&deps, job_id).await.expect("run");

    assert_eq!(
        outcome,
        ProcessOutcome::Failed {
            code: "attempts_exhausted".into()
        }
    );
    let job = job_row(&app, job_id).await;
    assert_eq!(job.status, "failed");
    assert_eq!(job.error_code.as_deref(), Some("attempts_exhausted"));
    let order = order_of_job(&app, job_id).await.expect("order");
    assert_eq!(order.status, "cancelled");
    assert_eq!(order.status_reason.as_deref(), Some("attempts_exhausted"));
    assert_eq!(app.stock(&l).await, (3, 0));
    assert_eq!(app.gate_counter(&l).await, Some(3));
    app.assert_stock_invariant().await;
}

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

// ---------------------------------------------------------------------------------------------
// 14. Refusals before any job exists.

#[tokio::test]
async fn checkout_refusals_write_no_job() {
    let app = TestApp::spawn().await;
    let (_, seller) = app.signed_up("seller").await;
    let l = listing(&app.create_listing(&seller, "Bowl", 1_200, 3).await);
    let other = listing(&app.create_listing(&seller, "Plate", 800, 3).await);
    let (buyer_id, buyer, address) = app.buyer("buyer").await;
    let (_, _, strangers_address) = app.buyer("stranger").await;

    // Empty cart.
    let resp = app.checkout(&buyer, &address, "k1").await;
    assert_error(&resp, StatusCode::UNPROCESSABLE_ENTITY, "empty_cart");

    // Unverified address.
    app.add_to_cart(&buyer, &l, 1).await;
    let pending = Uuid::now_v7();
    sqlx::query(
        "INSERT INTO addresses (id, user_id, line1, city, postal_code, country, status)
         VALUES ($1, $2, '2 Side St', 'Springfield', '12345', 'US', 'pending')",
    )
    .bind(pending)
    .bind(buyer_id.parse::<Uuid>().unwrap())
    .execute(app.pool())
    .await
    .unwrap();
    let resp = app.checkout(&buyer, &pending.to_string(), "k2").await;
    assert_error(
        &resp,
        StatusCode::UNPROCESSABLE_ENTITY,
        "address_not_verified",
    );

    // Someone else's address.
    let resp = app.checkout(&buyer, &strangers_address, "k3").await;
    assert_error(&resp, StatusCode::UNPROCESSABLE_ENTITY, "address_not_found");

    // A listing deactivated after it went into the cart.
    app.add_to_cart(&buyer, &other, 1).await;
    let deactivated =
        crate::helpers::delete(&app, &format!("/api/v1/listings/{other}"), Some(&seller)).await;
    assert_eq!(deactivated.status, StatusCode::NO_CONTENT);
    let resp = app.checkout(&buyer, &address, "k4").await;
    assert_error(
        &resp,
        StatusCode::UNPROCESSABLE_ENTITY,
        "listing_unavailable",
    );
    assert_eq!(resp.body["error"]["details"]["listing_ids"], json!([other]));

    assert_eq!(jobs(&app).await, 0, "no refusal wrote a job row");
    assert_eq!(app.gate_counter(&l).await, None, "nor touched the gate");
    assert_eq!(app.stock(&l).await, (3, 0));
    // Fixing the cart makes the same request go through.
    let resp =
        crate::helpers::delete(&app, &format!("/api/v1/cart/items/{other}"), Some(&buyer)).await;
    assert_eq!(resp.status, StatusCode::NO_CONTENT);
    accepted_job(&app.checkout(&buyer, &address, "k5").await);
    assert_eq!(jobs(&app).await, 1);
    app.assert_stock_invariant().await;
}
