//! Refunds by line: the buyer gets unshipped lines refunded although another seller shipped,
//! a seller refunds their own lines, and refunds never add up to more than was paid.

use poem::http::StatusCode;
use serde_json::{Value, json};
use shared::orders::refund::RefundOutcome;
use test_support::{
    TestApp, TestResponse,
    stripe::{field, form, header},
};
use uuid::Uuid;

use super::{
    Intents, balances, calls, line_statuses, pay, status_of, stripe_fake, stripe_payments_app,
};
use crate::{
    checkout::{accepted_job, place_order},
    helpers::{assert_error, id_of},
};

/// A paid order with one line from each of two sellers: `ann` sells a lamp (1,000 × 1), `bob`
/// two mugs (700 × 2).
struct TwoSellers {
    ann: String,
    bob: String,
    buyer: String,
    buyer_id: Uuid,
    order_id: String,
    lamp_line: String,
    mug_line: String,
    mug_listing: String,
}

async fn two_sellers(app: &TestApp, intents: &Intents) -> TwoSellers {
    let (_, ann) = app.signed_up("ann").await;
    let (_, bob) = app.signed_up("bob").await;
    let lamp = id_of(&app.create_listing(&ann, "Lamp", 1_000, 5).await);
    let mug = id_of(&app.create_listing(&bob, "Mug", 700, 5).await);
    let (buyer_id, buyer, address) = app.buyer("buyer").await;
    app.add_to_cart(&buyer, &lamp, 1).await;
    app.add_to_cart(&buyer, &mug, 2).await;
    let (_, order_id) = place_order(app, &buyer, &address, "two-sellers").await;
    pay(app, intents, &order_id).await;
    let view = app
        .get(&format!("/api/v1/orders/{order_id}"), Some(&buyer))
        .await;
    let line_of = |seller: &str| -> String {
        let lines = view.body["lines"].as_array().expect("lines");
        let line = lines
            .iter()
            .find(|l| l["seller_username"] == seller)
            .expect("line of seller");
        id_of(line)
    };
    TwoSellers {
        lamp_line: line_of("ann"),
        mug_line: line_of("bob"),
        ann,
        bob,
        buyer,
        buyer_id: buyer_id.parse().unwrap(),
        order_id,
        mug_listing: mug,
    }
}

async fn refund_lines(app: &TestApp, order_id: &str, token: &str, body: Value) -> TestResponse {
    app.post(
        &format!("/api/v1/orders/{order_id}/refund"),
        Some(token),
        body,
    )
    .await
}

async fn refund_all(app: &TestApp, order_id: &str, token: &str) -> TestResponse {
    app.request(
        "POST",
        &format!("/api/v1/orders/{order_id}/refund"),
        Some(token),
        None,
    )
    .await
}

async fn ship(app: &TestApp, order_id: &str, seller: &str, line: &str) {
    let resp = app
        .post(
            &format!("/api/v1/orders/{order_id}/shipments"),
            Some(seller),
            json!({ "line_ids": [line], "tracking_code": "1Z999AA1" }),
        )
        .await;
    assert_eq!(resp.status, StatusCode::OK, "{}", resp.body);
}

/// `(refunded_cents, total_cents)` of an order.
async fn refunded_of(app: &TestApp, order_id: &str) -> (i64, i64) {
    sqlx::query_as("SELECT refunded_cents, total_cents FROM orders WHERE id = $1")
        .bind(order_id.parse::<Uuid>().unwrap())
        .fetch_one(app.pool())
        .await
        .expect("order amounts")
}

#[tokio::test]
async fn after_one_seller_shipped_the_buyer_refunds_the_other_sellers_unshipped_line() {
    let (server, intents) = stripe_fake().await;
    let app = stripe_payments_app(&server).await;
    let shop = two_sellers(&app, &intents).await;
    ship(&app, &shop.order_id, &shop.ann, &shop.lamp_line).await;
    let mug_stock = app.stock(&shop.mug_listing).await;

    let whole = refund_all(&app, &shop.order_id, &shop.buyer).await;
    assert_error(&whole, StatusCode::CONFLICT, "order_shipped");
    let resp = refund_lines(
        &app,
        &shop.order_id,
        &shop.buyer,
        json!({ "line_ids": [shop.mug_line] }),
    )
    .await;
    let job = accepted_job(&resp);
    let outcomes = app.run_refund_jobs().await;

    assert_eq!(outcomes, [RefundOutcome::Refunded]);
    let refunds = calls(&server, "POST", "/v1/refunds").await;
    assert_eq!(refunds.len(), 1);
    assert_eq!(
        field(&form(&refunds[0]), "amount"),
        Some("1400"),
        "2 × 7.00"
    );
    assert_eq!(
        header(&refunds[0], "idempotency-key"),
        Some(format!("refund-{job}").as_str())
    );
    assert_eq!(
        status_of(&app, &shop.order_id).await.0,
        "partially_refunded"
    );
    let mut statuses = line_statuses(&app, &shop.order_id).await;
    statuses.sort();
    assert_eq!(statuses, ["refunded", "shipped"]);
    assert_eq!(
        app.stock(&shop.mug_listing).await,
        (mug_stock.0 + 2, mug_stock.1),
        "the mugs are back in stock"
    );
    assert_eq!(refunded_of(&app, &shop.order_id).await, (1_400, 2_400));
    // Ann keeps her sale (1,000 − 10 %); Bob's sale and fee are reversed.
    assert_eq!(balances(&app, &shop.ann).await, [("usd".to_owned(), 900)]);
    assert_eq!(balances(&app, &shop.bob).await, [("usd".to_owned(), 0)]);
    let view = app
        .get(
            &format!("/api/v1/orders/{}", shop.order_id),
            Some(&shop.buyer),
        )
        .await;
    assert_eq!(view.body["status"], "partially_refunded", "{}", view.body);
    app.assert_stock_invariant().await;
}

#[tokio::test]
async fn a_seller_refunds_their_own_unshipped_line_and_no_one_elses() {
    let (server, intents) = stripe_fake().await;
    let app = stripe_payments_app(&server).await;
    let shop = two_sellers(&app, &intents).await;

    let foreign = refund_lines(
        &app,
        &shop.order_id,
        &shop.bob,
        json!({ "line_ids": [shop.lamp_line] }),
    )
    .await;
    assert_error(&foreign, StatusCode::FORBIDDEN, "not_line_seller");
    let own = refund_lines(
        &app,
        &shop.order_id,
        &shop.bob,
        json!({ "line_ids": [shop.mug_line] }),
    )
    .await;
    accepted_job(&own);
    app.run_refund_jobs().await;

    assert_eq!(
        status_of(&app, &shop.order_id).await.0,
        "partially_refunded"
    );
    assert_eq!(refunded_of(&app, &shop.order_id).await, (1_400, 2_400));
    // The buyer's whole-order refund now returns what is left: the lamp.
    accepted_job(&refund_all(&app, &shop.order_id, &shop.buyer).await);
    app.run_refund_jobs().await;
    assert_eq!(
        status_of(&app, &shop.order_id).await,
        ("refunded".into(), Some("refunded_by_buyer".into()))
    );
    assert_eq!(refunded_of(&app, &shop.order_id).await, (2_400, 2_400));
    let amounts: Vec<_> = calls(&server, "POST", "/v1/refunds")
        .await
        .iter()
        .map(|r| field(&form(r), "amount").map(str::to_owned))
        .collect();
    assert_eq!(amounts, [Some("1400".to_owned()), Some("1000".to_owned())]);
    app.assert_stock_invariant().await;
}

#[tokio::test]
async fn refunds_never_add_up_to_more_than_was_paid() {
    let (server, intents) = stripe_fake().await;
    let app = stripe_payments_app(&server).await;
    let shop = two_sellers(&app, &intents).await;
    let mug = json!({ "line_ids": [shop.mug_line] });
    let lamp = json!({ "line_ids": [shop.lamp_line] });

    let first = accepted_job(&refund_lines(&app, &shop.order_id, &shop.buyer, mug.clone()).await);
    // While it runs: the same lines answer with the same job, other lines wait for it.
    let same = accepted_job(&refund_lines(&app, &shop.order_id, &shop.buyer, mug.clone()).await);
    assert_eq!(same, first);
    let other = refund_lines(&app, &shop.order_id, &shop.buyer, lamp.clone()).await;
    assert_error(&other, StatusCode::CONFLICT, "refund_in_progress");
    assert_eq!(other.body["error"]["details"]["job_id"], first.to_string());
    app.run_refund_jobs().await;

    let again = refund_lines(&app, &shop.order_id, &shop.buyer, mug).await;
    assert_error(&again, StatusCode::CONFLICT, "line_not_refundable");
    assert_eq!(
        again.body["error"]["details"]["line_ids"],
        json!([shop.mug_line])
    );
    assert_eq!(calls(&server, "POST", "/v1/refunds").await.len(), 1);
    // The database refuses a refunded amount above the total, whatever the code does.
    let over = sqlx::query("UPDATE orders SET refunded_cents = total_cents + 1 WHERE id = $1")
        .bind(shop.order_id.parse::<Uuid>().unwrap())
        .execute(app.pool())
        .await;
    assert!(
        over.is_err(),
        "refunded_cents > total_cents must be refused"
    );
    assert_eq!(refunded_of(&app, &shop.order_id).await, (1_400, 2_400));
    app.assert_stock_invariant().await;
}

#[tokio::test]
async fn forged_or_malformed_line_ids_are_refused_and_create_nothing() {
    let (server, intents) = stripe_fake().await;
    let app = stripe_payments_app(&server).await;
    let shop = two_sellers(&app, &intents).await;
    let stranger_line = Uuid::now_v7().to_string();

    let unknown = refund_lines(
        &app,
        &shop.order_id,
        &shop.buyer,
        json!({ "line_ids": [shop.mug_line, stranger_line] }),
    )
    .await;
    assert_error(
        &unknown,
        StatusCode::UNPROCESSABLE_ENTITY,
        "line_not_in_order",
    );
    assert_eq!(
        unknown.body["error"]["details"]["line_ids"],
        json!([stranger_line])
    );
    let empty = refund_lines(&app, &shop.order_id, &shop.buyer, json!({ "line_ids": [] })).await;
    assert_error(
        &empty,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    );
    for body in [
        json!({ "line_ids": "all" }),
        json!({ "line_ids": [42] }),
        json!({ "line_ids": ["not-a-uuid"] }),
        json!({}),
    ] {
        let resp = refund_lines(&app, &shop.order_id, &shop.buyer, body.clone()).await;
        assert!(resp.status.is_client_error(), "{body}: {}", resp.status);
        crate::helpers::assert_envelope(&resp);
    }
    // Duplicates name one line once.
    let twice = refund_lines(
        &app,
        &shop.order_id,
        &shop.buyer,
        json!({ "line_ids": [shop.mug_line, shop.mug_line] }),
    )
    .await;
    accepted_job(&twice);
    app.run_refund_jobs().await;
    assert_eq!(refunded_of(&app, &shop.order_id).await, (1_400, 2_400));
    assert_eq!(calls(&server, "POST", "/v1/refunds").await.len(), 1);
    app.assert_stock_invariant().await;
}

#[tokio::test]
async fn a_refund_job_accepted_before_refunds_by_line_still_refunds_everything_with_its_old_key() {
    let (server, intents) = stripe_fake().await;
    let app = stripe_payments_app(&server).await;
    let shop = two_sellers(&app, &intents).await;
    let order_id: Uuid = shop.order_id.parse().unwrap();
    // The payload such a job carried: only the order.
    sqlx::query(
        "INSERT INTO jobs (id, kind, owner_id, payload) VALUES ($1, 'refund_order', $2, $3)",
    )
    .bind(Uuid::now_v7())
    .bind(shop.buyer_id)
    .bind(json!({ "order_id": order_id }))
    .execute(app.pool())
    .await
    .unwrap();

    assert_eq!(app.run_refund_jobs().await, [RefundOutcome::Refunded]);

    let refunds = calls(&server, "POST", "/v1/refunds").await;
    assert_eq!(refunds.len(), 1);
    assert_eq!(
        header(&refunds[0], "idempotency-key"),
        Some(format!("order-{order_id}-refund").as_str())
    );
    assert_eq!(
        field(&form(&refunds[0]), "amount"),
        None,
        "the same request as before"
    );
    assert_eq!(
        status_of(&app, &shop.order_id).await,
        ("refunded".into(), Some("refunded_by_buyer".into()))
    );
    assert_eq!(refunded_of(&app, &shop.order_id).await, (2_400, 2_400));
    app.assert_stock_invariant().await;
}
