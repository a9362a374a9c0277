//! Admission: the happy path, and the refusals that write no job.

use poem::http::StatusCode;
use serde_json::json;
use shared::checkout::ProcessOutcome;
use test_support::TestApp;
use uuid::Uuid;

use crate::helpers::assert_error;

use super::{accepted_job, jobs, listing};

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
    let outcomes = app.run_checkout_jobs().await;
    assert!(
        matches!(outcomes.as_slice(), [ProcessOutcome::Succeeded { .. }]),
        "{outcomes:?}"
    );
    app.assert_stock_invariant().await;
}

/// Whether the stock gate still holds an admission ticket for `buyer_id` (a ticket released
/// after its job was recorded reads `recorded`).
async fn ticket_held(app: &TestApp, buyer_id: &str) -> bool {
    let key = format!(
        "{}:gate-ticket:checkout:{buyer_id}",
        app.settings.redis_prefix
    );
    let value: Option<String> = redis::cmd("GET")
        .arg(&key)
        .query_async(&mut app.redis.clone())
        .await
        .unwrap();
    value.as_deref() == Some("held")
}

#[tokio::test]
async fn an_admission_frees_its_gate_ticket_so_the_next_checkout_goes_straight_through() {
    let app = TestApp::spawn().await;
    let (_, seller) = app.signed_up("seller").await;
    let (buyer_id, buyer, address) = app.buyer("buyer").await;
    let l = listing(&app.create_listing(&seller, "Cup", 400, 1).await);
    let other = listing(&app.create_listing(&seller, "Saucer", 300, 5).await);
    app.add_to_cart(&buyer, &l, 1).await;
    assert_eq!(
        app.checkout(&buyer, &address, "first").await.status,
        StatusCode::ACCEPTED
    );
    assert!(
        !ticket_held(&app, &buyer_id).await,
        "freed once the job is recorded"
    );
    app.run_checkout_jobs().await;

    app.add_to_cart(&buyer, &other, 1).await;

    let started = std::time::Instant::now();
    let second = app.checkout(&buyer, &address, "second").await;
    assert_eq!(second.status, StatusCode::ACCEPTED, "{}", second.body);
    assert!(
        started.elapsed() < std::time::Duration::from_secs(1),
        "the second checkout waited {:?} for a ticket",
        started.elapsed()
    );
    assert!(!ticket_held(&app, &buyer_id).await);
    app.run_checkout_jobs().await;
}
