//! Buyer refunds (`POST /orders/{id}/refund` and the `refund_order` job) and seller balances.

use poem::http::StatusCode;
use serde_json::json;
use shared::orders::refund::{self, RefundError, RefundOutcome};
use test_support::{
    TestResponse,
    stripe::{header, stripe_error},
};
use uuid::Uuid;
use wiremock::ResponseTemplate;

use super::{
    Endpoint, balances, calls, ledger_of, line_statuses, order, pay, shop, status_of, stripe_fake,
    stripe_payments_app,
};
use crate::{
    checkout::{accepted_job, job_row},
    helpers::{assert_error, id_of},
};

async fn refund(app: &test_support::TestApp, order_id: &str, token: Option<&str>) -> TestResponse {
    app.request(
        "POST",
        &format!("/api/v1/orders/{order_id}/refund"),
        token,
        None,
    )
    .await
}

#[tokio::test]
async fn the_buyer_refunds_a_paid_order_and_the_stock_comes_back() {
    let (server, intents) = stripe_fake().await;
    let app = stripe_payments_app(&server).await;
    let shop = shop(&app, 1_000, 5).await;
    let order_id = order(&app, &shop, 2).await;
    pay(&app, &intents, &order_id).await;
    assert_eq!(app.stock(&shop.listing).await, (3, 0));
    let gate = app.gate_counter(&shop.listing).await.expect("gate loaded");

    let job_id = accepted_job(&refund(&app, &order_id, Some(&shop.buyer)).await);
    let again = accepted_job(&refund(&app, &order_id, Some(&shop.buyer)).await);
    assert_eq!(again, job_id, "the same refund, not a second one");
    assert_eq!(
        status_of(&app, &order_id).await.0,
        "paid",
        "not refunded by the api"
    );

    let outcomes = app.run_refund_jobs().await;

    assert_eq!(outcomes, [RefundOutcome::Refunded]);
    let job = app
        .get(&format!("/api/v1/jobs/{job_id}"), Some(&shop.buyer))
        .await;
    assert_eq!(job.body["kind"], "refund_order");
    assert_eq!(job.body["status"], "succeeded", "{}", job.body);
    assert_eq!(job.body["result"]["order_id"], order_id);
    assert_eq!(
        status_of(&app, &order_id).await,
        ("refunded".into(), Some("refunded_by_buyer".into()))
    );
    assert_eq!(line_statuses(&app, &order_id).await, ["refunded"]);
    assert_eq!(
        app.stock(&shop.listing).await,
        (5, 0),
        "units back in stock"
    );
    assert_eq!(app.gate_counter(&shop.listing).await, Some(gate + 2));
    assert_eq!(ledger_of(&app, &order_id).await, (0, 4));
    assert_eq!(balances(&app, &shop.seller).await, [("usd".to_owned(), 0)]);
    let refunds = calls(&server, "POST", "/v1/refunds").await;
    assert_eq!(refunds.len(), 1);
    assert_eq!(
        header(&refunds[0], "idempotency-key"),
        Some(format!("refund-{job_id}").as_str()),
        "each refund has its own key"
    );
    assert_eq!(
        test_support::stripe::field(&test_support::stripe::form(&refunds[0]), "amount"),
        Some("2000"),
        "exactly the lines' total"
    );
    assert_error(
        &refund(&app, &order_id, Some(&shop.buyer)).await,
        StatusCode::CONFLICT,
        "order_not_paid",
    );
    app.assert_stock_invariant().await;
}

#[tokio::test]
async fn only_the_buyer_refunds_and_only_paid_unshipped_orders() {
    let (server, intents) = stripe_fake().await;
    let app = stripe_payments_app(&server).await;
    let shop = shop(&app, 1_000, 5).await;
    let (_, stranger) = app.signed_up("stranger").await;
    let order_id = order(&app, &shop, 1).await;

    assert_error(
        &refund(&app, &order_id, Some(&shop.buyer)).await,
        StatusCode::CONFLICT,
        "order_not_paid",
    );
    pay(&app, &intents, &order_id).await;
    assert_error(
        &refund(&app, &order_id, Some(&stranger)).await,
        StatusCode::NOT_FOUND,
        "order_not_found",
    );
    // A seller refunds by naming their lines, never the whole order.
    assert_error(
        &refund(&app, &order_id, Some(&shop.seller)).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "lines_required",
    );
    assert_error(
        &refund(&app, &order_id, None).await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    );
    assert_error(
        &refund(&app, &Uuid::now_v7().to_string(), Some(&shop.buyer)).await,
        StatusCode::NOT_FOUND,
        "order_not_found",
    );
    let lines = app
        .get(&format!("/api/v1/orders/{order_id}"), Some(&shop.seller))
        .await;
    let shipped = app
        .post(
            &format!("/api/v1/orders/{order_id}/shipments"),
            Some(&shop.seller),
            json!({ "line_ids": [id_of(&lines.body["lines"][0])], "tracking_code": "1Z999" }),
        )
        .await;
    assert_eq!(shipped.status, StatusCode::OK, "{}", shipped.body);

    assert_error(
        &refund(&app, &order_id, Some(&shop.buyer)).await,
        StatusCode::CONFLICT,
        "order_shipped",
    );
    assert_eq!(status_of(&app, &order_id).await.0, "paid");
    assert!(app.run_refund_jobs().await.is_empty(), "no job was created");
    app.assert_stock_invariant().await;
}

#[tokio::test]
async fn a_refund_already_made_at_stripe_counts_and_an_outage_is_retried() {
    let (server, intents) = stripe_fake().await;
    let app = stripe_payments_app(&server).await;
    let shop = shop(&app, 1_000, 5).await;
    let order_id = order(&app, &shop, 1).await;
    pay(&app, &intents, &order_id).await;
    let job_id = accepted_job(&refund(&app, &order_id, Some(&shop.buyer)).await);
    intents.fail(Endpoint::Refund, ResponseTemplate::new(503));

    let run = refund::process(&app.payment_deps(), job_id).await;

    assert!(
        matches!(run, Err(RefundError::PaymentUnavailable(_))),
        "{run:?}"
    );
    assert_eq!(
        job_row(&app, job_id).await.status.as_str(),
        "queued",
        "to be retried"
    );
    assert_eq!(status_of(&app, &order_id).await.0, "paid");
    // Meanwhile someone refunded the charge in Stripe's dashboard.
    intents.fail(
        Endpoint::Refund,
        stripe_error(
            400,
            json!({
                "type": "invalid_request_error",
                "code": "charge_already_refunded",
                "message": "Charge ch_3QxR2bLkdIwHu7ix0xyz1234 has already been refunded."
            }),
        ),
    );

    assert_eq!(app.run_refund_jobs().await, [RefundOutcome::Refunded]);
    assert_eq!(status_of(&app, &order_id).await.0, "refunded");
    assert_eq!(job_row(&app, job_id).await.status.as_str(), "succeeded");
    assert_eq!(app.stock(&shop.listing).await, (5, 0));
    app.assert_stock_invariant().await;
}

#[tokio::test]
async fn the_seller_balance_follows_paid_and_refunded_orders() {
    let (server, intents) = stripe_fake().await;
    let app = stripe_payments_app(&server).await;
    let shop = shop(&app, 1_000, 10).await;
    let (_, other_seller) = app.signed_up("other_seller").await;
    let other_listing = id_of(&app.create_listing(&other_seller, "Cups", 333, 10).await);
    let first = order(&app, &shop, 2).await;
    app.add_to_cart(&shop.buyer, &other_listing, 3).await;
    let second = order(&app, &shop, 1).await;
    let unpaid = order(&app, &shop, 1).await;
    pay(&app, &intents, &first).await;
    pay(&app, &intents, &second).await;

    // 10 % fee, rounded down per line: 2000 − 200 = 1800, 1000 − 100 = 900; 999 − 99 = 900.
    assert_eq!(
        balances(&app, &shop.seller).await,
        [("usd".to_owned(), 2_700)]
    );
    assert_eq!(
        balances(&app, &other_seller).await,
        [("usd".to_owned(), 900)]
    );

    accepted_job(&refund(&app, &second, Some(&shop.buyer)).await);
    app.run_refund_jobs().await;

    assert_eq!(
        balances(&app, &shop.seller).await,
        [("usd".to_owned(), 1_800)]
    );
    assert_eq!(balances(&app, &other_seller).await, [("usd".to_owned(), 0)]);
    assert_eq!(status_of(&app, &unpaid).await.0, "pending_payment");
    assert_error(
        &app.get("/api/v1/users/me/balance", None).await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    );
    app.assert_stock_invariant().await;
}
