//! Payments end to end: signed Stripe webhooks, the `payment_event` job, expiry, late-payment
//! refunds, buyer refunds, shipments, seller balances and the development payment mode.
//! Stripe is a stateful local fake; jobs run inline. Every test ends with the stock invariant.

mod dev;
mod expiry;
mod line_refunds;
mod mismatch;
mod ordering;
mod outside;
mod reconcile;
mod refunds;
mod shipments;
mod webhooks;

use poem::http::StatusCode;
use secrecy::SecretString;
use serde_json::{Value, json};
use shared::payment_events::EventOutcome;
use test_support::{TEST_WEBHOOK_SECRET, TestApp, stripe::known_intent_json};
use uuid::Uuid;
use wiremock::{MockServer, Request};

pub use test_support::stripe::{Endpoint, Intents, stripe_fake};

use crate::{
    checkout::place_order,
    helpers::{count, id_of},
};

/// The app in Stripe mode against `server`, verifying webhooks with [`TEST_WEBHOOK_SECRET`].
pub async fn stripe_payments_app(server: &MockServer) -> TestApp {
    let uri = server.uri();
    TestApp::spawn_with(move |s| {
        s.stripe.mode = shared::config::PaymentMode::Stripe;
        s.stripe.secret_key = Some(SecretString::from("sk_test_x"));
        s.stripe.api_base = Some(uri);
        s.stripe.webhook_secret = Some(SecretString::from(TEST_WEBHOOK_SECRET));
        // These tests place many orders for one buyer; the cap has its own tests.
        s.max_unpaid_orders = 100;
    })
    .await
}

/// A Stripe event of `event_type` about `object`, shaped like Stripe's.
pub fn stripe_event(event_id: &str, event_type: &str, object: Value) -> Value {
    json!({
        "id": event_id,
        "object": "event",
        "api_version": "2026-09-30.endive",
        "created": chrono::Utc::now().timestamp(),
        "livemode": false,
        "pending_webhooks": 1,
        "request": { "id": null, "idempotency_key": null },
        "type": event_type,
        "data": { "object": object }
    })
}

/// A Stripe event about PaymentIntent `intent_id`, shaped like Stripe's.
pub fn intent_event(event_id: &str, event_type: &str, intent_id: &str, status: &str) -> Value {
    stripe_event(event_id, event_type, known_intent_json(intent_id, status))
}

/// A fresh `payment_intent.succeeded` event for `intent_id`, as the fake holds the intent.
pub fn succeeded_event(intent_id: &str) -> Value {
    intent_event(
        &event_id(),
        "payment_intent.succeeded",
        intent_id,
        "succeeded",
    )
}

/// Posts `event` signed, expects it stored, and runs the payment event jobs.
pub async fn deliver(app: &TestApp, event: &Value) -> Vec<Option<EventOutcome>> {
    let resp = app.post_signed_event(event).await;
    assert_eq!(resp.status, StatusCode::OK, "{}", resp.body);
    assert_eq!(resp.body["status"], "stored", "{}", resp.body);
    app.run_payment_event_jobs().await
}

/// A fresh event id.
pub fn event_id() -> String {
    format!("evt_{}", Uuid::now_v7().simple())
}

/// A seller with one listing and a buyer with a verified address.
pub struct Shop {
    pub seller: String,
    pub buyer: String,
    pub address: String,
    pub listing: String,
}

/// Sets up a [`Shop`] whose listing has `quantity` units at `price_cents`.
pub async fn shop(app: &TestApp, price_cents: i64, quantity: i64) -> Shop {
    let (_, seller) = app.signed_up("seller").await;
    let listing = id_of(
        &app.create_listing(&seller, "Teapot", price_cents, quantity)
            .await,
    );
    let (_, buyer, address) = app.buyer("buyer").await;
    Shop {
        seller,
        buyer,
        address,
        listing,
    }
}

/// Puts `units` in the buyer's cart and checks out; returns the order id.
pub async fn order(app: &TestApp, shop: &Shop, units: i64) -> String {
    app.add_to_cart(&shop.buyer, &shop.listing, units).await;
    let key = Uuid::now_v7().to_string();
    place_order(app, &shop.buyer, &shop.address, &key).await.1
}

/// The order's PaymentIntent id.
pub async fn intent_of(app: &TestApp, order_id: &str) -> String {
    sqlx::query_scalar("SELECT payment_intent_id FROM orders WHERE id = $1")
        .bind(order_id.parse::<Uuid>().unwrap())
        .fetch_one(app.pool())
        .await
        .expect("order's payment intent")
}

/// `(status, status_reason)` of an order.
pub async fn status_of(app: &TestApp, order_id: &str) -> (String, Option<String>) {
    sqlx::query_as("SELECT status, status_reason FROM orders WHERE id = $1")
        .bind(order_id.parse::<Uuid>().unwrap())
        .fetch_one(app.pool())
        .await
        .expect("order status")
}

/// Statuses of an order's lines.
pub async fn line_statuses(app: &TestApp, order_id: &str) -> Vec<String> {
    sqlx::query_scalar("SELECT status FROM order_lines WHERE order_id = $1 ORDER BY id")
        .bind(order_id.parse::<Uuid>().unwrap())
        .fetch_all(app.pool())
        .await
        .expect("line statuses")
}

/// `(sum, number of entries)` of an order's ledger entries.
pub async fn ledger_of(app: &TestApp, order_id: &str) -> (i64, i64) {
    sqlx::query_as(
        "SELECT coalesce(sum(amount_cents), 0)::bigint, count(*) FROM ledger_entries WHERE order_id = $1",
    )
    .bind(order_id.parse::<Uuid>().unwrap())
    .fetch_one(app.pool())
    .await
    .expect("ledger of order")
}

/// `GET /users/me/balance` as `token`: (currency, amount) pairs.
pub async fn balances(app: &TestApp, token: &str) -> Vec<(String, i64)> {
    let resp = app.get("/api/v1/users/me/balance", Some(token)).await;
    assert_eq!(resp.status, StatusCode::OK, "{}", resp.body);
    resp.body["balances"]
        .as_array()
        .unwrap_or_else(|| panic!("no balances: {}", resp.body))
        .iter()
        .map(|b| {
            (
                b["currency"].as_str().unwrap().to_owned(),
                b["amount_cents"].as_i64().unwrap(),
            )
        })
        .collect()
}

/// Number of stored webhook events.
pub async fn stored_events(app: &TestApp) -> i64 {
    count(app, "SELECT count(*) FROM webhook_events").await
}

/// Number of tasks ever pushed onto the `payment_event` queue (apalis keeps their data).
pub async fn pushed_event_tasks(app: &TestApp) -> i64 {
    let key = format!("{}-payment_event:data", app.settings.redis_prefix);
    redis::cmd("HLEN")
        .arg(key)
        .query_async(&mut app.redis.clone())
        .await
        .expect("HLEN")
}

/// Moves an order's payment deadline into the past.
pub async fn make_overdue(app: &TestApp, order_id: &str) {
    sqlx::query("UPDATE orders SET expires_at = now() - interval '1 second' WHERE id = $1")
        .bind(order_id.parse::<Uuid>().unwrap())
        .execute(app.pool())
        .await
        .expect("move the deadline");
}

/// Requests to the fake matching `method` and `path`.
pub async fn calls(server: &MockServer, http_method: &str, url_path: &str) -> Vec<Request> {
    test_support::stripe::requests_to(server, http_method, url_path).await
}

/// Pays `order_id` through a signed `payment_intent.succeeded` webhook and the job.
pub async fn pay(app: &TestApp, intents: &Intents, order_id: &str) {
    let intent = intent_of(app, order_id).await;
    intents.set(&intent, "succeeded");
    let resp = app.post_signed_event(&succeeded_event(&intent)).await;
    assert_eq!(resp.status, StatusCode::OK, "{}", resp.body);
    app.run_payment_event_jobs().await;
    assert_eq!(status_of(app, order_id).await.0, "paid");
}
