//! Idempotency keys: one job and one order per key, however often and however concurrently
//! it is sent.

use std::sync::Arc;

use futures::future::join_all;
use poem::http::StatusCode;
use serde_json::json;
use shared::checkout::ProcessOutcome;
use test_support::TestApp;
use uuid::Uuid;

use crate::helpers::assert_error;

use super::{accepted_job, job_row, jobs, listing, orders};

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
    assert_eq!(job_row(&app, job_id).await.status.as_str(), "queued");
    app.assert_stock_invariant().await;
    app.allow_queued_jobs("that the refused reuse leaves the first job queued is the point");
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
