//! The stock gate and the reservations: the race for the last units, all lines or none, and a
//! gate that is wrong (flushed, admitting too much, behind a restock).

use std::sync::Arc;

use futures::future::join_all;
use poem::http::StatusCode;
use serde_json::json;
use shared::checkout::ProcessOutcome;
use test_support::{TestApp, TestResponse};
use uuid::Uuid;

use crate::helpers::{assert_error, count};

use super::{accepted_job, jobs, listing, orders, place_order, set_gate};

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
