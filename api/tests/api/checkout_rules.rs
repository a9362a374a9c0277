//! What checkout refuses besides missing stock: carts in several currencies, carts past a money
//! limit, a second checkout of the same cart, and buyers holding too many unpaid orders. Each
//! is refused at admission with a clear 4xx, and re-checked by the worker under the row locks
//! when the listing can change in between.

use std::sync::Arc;

use futures::future::join_all;
use poem::http::StatusCode;
use serde_json::json;
use shared::{checkout::ProcessOutcome, domain::money::STRIPE_MAX_CHARGE};
use test_support::{
    TestApp,
    stripe::{requests_to, stripe_app, stripe_fake},
};

use crate::{
    checkout::{accepted_job, jobs, orders},
    helpers::{assert_error, id_of, patch, put},
};

/// `PUT /cart/items/{listing}` with `quantity`.
async fn set_quantity(
    app: &TestApp,
    token: &str,
    listing: &str,
    quantity: i64,
) -> test_support::TestResponse {
    put(
        app,
        &format!("/api/v1/cart/items/{listing}"),
        Some(token),
        json!({ "quantity": quantity }),
    )
    .await
}

/// Changes a listing as its seller.
async fn edit(app: &TestApp, seller: &str, listing: &str, body: serde_json::Value) {
    let resp = patch(
        app,
        &format!("/api/v1/listings/{listing}"),
        Some(seller),
        body,
    )
    .await;
    assert_eq!(resp.status, StatusCode::OK, "{}", resp.body);
}

#[tokio::test]
async fn a_listing_switched_to_another_currency_in_the_cart_is_refused_at_checkout() {
    let app = TestApp::spawn().await;
    let (_, seller) = app.signed_up("seller").await;
    let usd = id_of(&app.create_listing(&seller, "Kettle", 1_000, 5).await);
    let later_jpy = id_of(&app.create_listing(&seller, "Teacup", 500, 5).await);
    let (_, buyer, address) = app.buyer("buyer").await;
    app.add_to_cart(&buyer, &usd, 1).await;
    app.add_to_cart(&buyer, &later_jpy, 1).await;
    edit(&app, &seller, &later_jpy, json!({ "currency": "jpy" })).await;

    let resp = app.checkout(&buyer, &address, "mixed").await;

    assert_error(&resp, StatusCode::UNPROCESSABLE_ENTITY, "currency_mismatch");
    let mut lines = resp.body["error"]["details"]["lines"]
        .as_array()
        .expect("lines")
        .clone();
    lines.sort_by_key(|l| l["currency"].as_str().unwrap().to_owned());
    assert_eq!(
        lines,
        [
            json!({ "listing_id": later_jpy, "currency": "jpy" }),
            json!({ "listing_id": usd, "currency": "usd" }),
        ]
    );
    assert_eq!(jobs(&app).await, 0);
    assert_eq!(
        app.gate_counter(&usd).await,
        None,
        "the gate was not touched"
    );
}

#[tokio::test]
async fn a_currency_change_after_admission_fails_the_job_under_the_row_locks() {
    let app = TestApp::spawn().await;
    let (_, seller) = app.signed_up("seller").await;
    let usd = id_of(&app.create_listing(&seller, "Kettle", 1_000, 5).await);
    let later_jpy = id_of(&app.create_listing(&seller, "Teacup", 500, 5).await);
    let (_, buyer, address) = app.buyer("buyer").await;
    app.add_to_cart(&buyer, &usd, 2).await;
    app.add_to_cart(&buyer, &later_jpy, 1).await;
    let job = accepted_job(&app.checkout(&buyer, &address, "then-jpy").await);
    let gate = app.gate_counter(&usd).await;
    edit(&app, &seller, &later_jpy, json!({ "currency": "jpy" })).await;

    let outcomes = app.run_checkout_jobs().await;

    assert_eq!(
        outcomes,
        [ProcessOutcome::Failed {
            code: "currency_mismatch".into()
        }]
    );
    assert_eq!(orders(&app).await, 0, "no order in two currencies");
    assert_eq!(app.stock(&usd).await, (5, 0));
    assert_eq!(
        app.gate_counter(&usd).await,
        gate.map(|g| g + 2),
        "units back in the gate"
    );
    let status = app.get(&format!("/api/v1/jobs/{job}"), Some(&buyer)).await;
    assert_eq!(
        status.body["error"]["code"], "currency_mismatch",
        "{}",
        status.body
    );
    app.assert_stock_invariant().await;
}

#[tokio::test]
async fn money_limits_are_refused_with_the_limit_in_the_details() {
    let app = TestApp::spawn_with(|s| s.limits.max_cart_lines = 2).await;
    let (_, seller) = app.signed_up("seller").await;
    let (_, buyer, _) = app.buyer("buyer").await;

    // A unit above Stripe's maximum charge cannot even be listed.
    let resp = app
        .post(
            "/api/v1/listings",
            Some(&seller),
            json!({ "title": "Yacht", "price_cents": STRIPE_MAX_CHARGE + 1, "quantity": 1 }),
        )
        .await;
    assert_error(&resp, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    let message = &resp.body["error"]["details"]["fields"]["price_cents"];
    assert_eq!(
        message,
        &json!(format!("must be between 1 and {STRIPE_MAX_CHARGE}"))
    );

    let priciest = id_of(
        &app.create_listing(&seller, "Car", STRIPE_MAX_CHARGE, 3)
            .await,
    );
    let cheap = id_of(&app.create_listing(&seller, "Pen", 100, 5_000).await);
    let third = id_of(&app.create_listing(&seller, "Ink", 100, 5).await);
    assert_eq!(
        set_quantity(&app, &buyer, &priciest, 1).await.status,
        StatusCode::OK
    );

    // A second unit would double the order past the maximum charge.
    let resp = set_quantity(&app, &buyer, &priciest, 2).await;
    assert_error(&resp, StatusCode::UNPROCESSABLE_ENTITY, "limit_exceeded");
    assert_eq!(
        resp.body["error"]["details"],
        json!({ "limit": "max_order_total_cents", "max": STRIPE_MAX_CHARGE })
    );
    // So would any other line.
    let resp = set_quantity(&app, &buyer, &cheap, 1).await;
    assert_eq!(
        resp.body["error"]["details"]["limit"],
        "max_order_total_cents"
    );

    let resp = set_quantity(&app, &buyer, &priciest, 0).await;
    assert_eq!(resp.status, StatusCode::UNPROCESSABLE_ENTITY);
    let resp = crate::helpers::delete(
        &app,
        &format!("/api/v1/cart/items/{priciest}"),
        Some(&buyer),
    )
    .await;
    assert_eq!(resp.status, StatusCode::NO_CONTENT);
    let resp = set_quantity(&app, &buyer, &cheap, 1_001).await;
    assert_eq!(
        resp.body["error"]["details"],
        json!({ "limit": "max_line_quantity", "max": 1_000 })
    );
    assert_eq!(
        set_quantity(&app, &buyer, &cheap, 1_000).await.status,
        StatusCode::OK
    );
    assert_eq!(
        set_quantity(&app, &buyer, &third, 1).await.status,
        StatusCode::OK
    );
    let fourth = id_of(&app.create_listing(&seller, "Nib", 100, 5).await);
    let resp = set_quantity(&app, &buyer, &fourth, 1).await;
    assert_eq!(
        resp.body["error"]["details"],
        json!({ "limit": "max_cart_lines", "max": 2 })
    );
}

#[tokio::test]
async fn a_price_raised_while_in_the_cart_is_refused_at_admission_and_under_the_locks() {
    let app = TestApp::spawn().await;
    let (_, seller) = app.signed_up("seller").await;
    let a = id_of(&app.create_listing(&seller, "Piano", 50_000_000, 3).await);
    let b = id_of(&app.create_listing(&seller, "Organ", 40_000_000, 3).await);
    let (_, buyer, address) = app.buyer("buyer").await;
    app.add_to_cart(&buyer, &a, 1).await;
    app.add_to_cart(&buyer, &b, 1).await;
    edit(
        &app,
        &seller,
        &a,
        json!({ "price_cents": STRIPE_MAX_CHARGE }),
    )
    .await;

    let resp = app.checkout(&buyer, &address, "raised-before").await;
    assert_error(&resp, StatusCode::UNPROCESSABLE_ENTITY, "limit_exceeded");
    assert_eq!(jobs(&app).await, 0);

    edit(&app, &seller, &a, json!({ "price_cents": 50_000_000 })).await;
    accepted_job(&app.checkout(&buyer, &address, "raised-after").await);
    edit(&app, &seller, &b, json!({ "price_cents": 60_000_000 })).await;
    let outcomes = app.run_checkout_jobs().await;

    assert_eq!(
        outcomes,
        [ProcessOutcome::Failed {
            code: "limit_exceeded".into()
        }]
    );
    assert_eq!(orders(&app).await, 0);
    assert_eq!(app.stock(&a).await, (3, 0));
    app.assert_stock_invariant().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_checkouts_of_one_cart_with_different_keys_make_one_order_and_one_intent() {
    let (server, _) = stripe_fake().await;
    let app = Arc::new(stripe_app(&server).await);
    let (_, seller) = app.signed_up("seller").await;
    let l = id_of(&app.create_listing(&seller, "Last lamp", 2_500, 1).await);
    let (_, buyer, address) = app.buyer("buyer").await;
    app.add_to_cart(&buyer, &l, 1).await;

    let answers = join_all((0..5).map(|i| {
        let app = Arc::clone(&app);
        let (buyer, address) = (buyer.clone(), address.clone());
        tokio::spawn(async move { app.checkout(&buyer, &address, &format!("tab-{i}")).await })
    }))
    .await;
    let answers: Vec<_> = answers.into_iter().map(|a| a.expect("task")).collect();

    let accepted: Vec<_> = answers
        .iter()
        .filter(|r| r.status == StatusCode::ACCEPTED)
        .collect();
    assert_eq!(
        accepted.len(),
        1,
        "{:?}",
        answers.iter().map(|r| &r.body).collect::<Vec<_>>()
    );
    let job = accepted_job(accepted[0]);
    for refused in answers.iter().filter(|r| r.status != StatusCode::ACCEPTED) {
        assert_error(refused, StatusCode::CONFLICT, "checkout_in_progress");
        assert_eq!(refused.body["error"]["details"]["job_id"], job.to_string());
    }
    app.run_checkout_jobs().await;
    assert_eq!(orders(&app).await, 1);
    assert_eq!(
        requests_to(&server, "POST", "/v1/payment_intents")
            .await
            .len(),
        1,
        "one PaymentIntent, so no double charge"
    );
    // Once the order exists the cart is empty: a late retry with yet another key finds nothing.
    let late = app.checkout(&buyer, &address, "tab-late").await;
    assert_error(&late, StatusCode::UNPROCESSABLE_ENTITY, "empty_cart");
    app.assert_stock_invariant().await;
}

#[tokio::test]
async fn a_buyer_holds_at_most_the_configured_number_of_unpaid_orders() {
    let app = TestApp::spawn().await;
    let (_, seller) = app.signed_up("seller").await;
    let l = id_of(&app.create_listing(&seller, "Sock", 300, 100).await);
    let (_, buyer, address) = app.buyer("buyer").await;
    let mut placed = Vec::new();
    for i in 0..3 {
        app.add_to_cart(&buyer, &l, 1).await;
        let key = format!("order-{i}");
        placed.push(
            crate::checkout::place_order(&app, &buyer, &address, &key)
                .await
                .1,
        );
    }

    app.add_to_cart(&buyer, &l, 1).await;
    let resp = app.checkout(&buyer, &address, "order-3").await;

    assert_error(&resp, StatusCode::CONFLICT, "too_many_unpaid_orders");
    assert_eq!(resp.body["error"]["details"]["limit"], 3);
    assert_eq!(
        app.stock(&l).await,
        (100, 3),
        "the refused checkout holds nothing"
    );
    // Cancelling one frees its slot.
    let cancel = app
        .post(
            &format!("/api/v1/orders/{}/cancel", placed[0]),
            Some(&buyer),
            json!({}),
        )
        .await;
    assert!(cancel.status.is_success(), "{}", cancel.body);
    accepted_job(&app.checkout(&buyer, &address, "order-4").await);
    let outcomes = app.run_checkout_jobs().await;
    assert!(
        matches!(
            outcomes.as_slice(),
            [shared::checkout::ProcessOutcome::Succeeded { .. }]
        ),
        "{outcomes:?}"
    );
    app.assert_stock_invariant().await;
}

#[tokio::test]
async fn the_database_refuses_money_past_the_maximum_charge_whatever_the_code_does() {
    let app = TestApp::spawn().await;
    let (_, seller) = app.signed_up("seller").await;
    let l = id_of(&app.create_listing(&seller, "Lamp", 1_000, 5).await);
    let id: uuid::Uuid = l.parse().unwrap();

    let price = sqlx::query("UPDATE listings SET price_cents = 100000000 WHERE id = $1")
        .bind(id)
        .execute(app.pool())
        .await;
    let (_, buyer) = app.signed_up("buyer").await;
    app.add_to_cart(&buyer, &l, 1).await;
    let quantity = sqlx::query("UPDATE cart_lines SET quantity = 1000001")
        .execute(app.pool())
        .await;

    let violated = |r: &Result<sqlx::postgres::PgQueryResult, sqlx::Error>| match r {
        Err(sqlx::Error::Database(e)) => e.constraint().map(str::to_owned),
        _ => None,
    };
    assert_eq!(
        violated(&price).as_deref(),
        Some("listings_price_within_max_charge")
    );
    assert_eq!(
        violated(&quantity).as_deref(),
        Some("cart_lines_quantity_bounded")
    );
}

/// Answers `POST /v1/payment_intents` with an intent for 1 minor unit, whatever was asked.
struct UnderpricedIntent;

impl wiremock::Respond for UnderpricedIntent {
    fn respond(&self, request: &wiremock::Request) -> wiremock::ResponseTemplate {
        let fields = test_support::stripe::form(request);
        let order_id = test_support::stripe::field(&fields, "metadata[order_id]").unwrap_or("o");
        let id = test_support::stripe::intent_id_for(order_id);
        wiremock::ResponseTemplate::new(200).set_body_json(test_support::stripe::intent_json(
            &id,
            "requires_payment_method",
            1,
            order_id,
        ))
    }
}

#[tokio::test]
async fn an_intent_created_for_another_amount_is_never_handed_to_the_buyer() {
    let (server, _) = stripe_fake().await;
    wiremock::Mock::given(wiremock::matchers::method("POST"))
        .and(wiremock::matchers::path("/v1/payment_intents"))
        .respond_with(UnderpricedIntent)
        .with_priority(1)
        .mount(&server)
        .await;
    let app = stripe_app(&server).await;
    let (_, seller) = app.signed_up("seller").await;
    let l = id_of(&app.create_listing(&seller, "Lamp", 2_500, 3).await);
    let (_, buyer, address) = app.buyer("buyer").await;
    app.add_to_cart(&buyer, &l, 1).await;
    let job = accepted_job(&app.checkout(&buyer, &address, "underpriced").await);

    let outcomes = app.run_checkout_jobs().await;

    assert_eq!(
        outcomes,
        [ProcessOutcome::Failed {
            code: "payment_failed".into()
        }]
    );
    let status = app.get(&format!("/api/v1/jobs/{job}"), Some(&buyer)).await;
    assert_eq!(
        status.body["result"],
        serde_json::Value::Null,
        "no client secret: {}",
        status.body
    );
    let message = status.body["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("does not match the order"), "{message}");
    let order: (String, Option<String>) =
        sqlx::query_as("SELECT status, payment_intent_id FROM orders")
            .fetch_one(app.pool())
            .await
            .unwrap();
    assert_eq!(order, ("cancelled".to_owned(), None));
    assert_eq!(app.stock(&l).await, (3, 0), "units released");
    app.assert_stock_invariant().await;
}
