//! Development payment mode: `POST /dev/orders/{id}/payment` goes through the same job.

use poem::http::StatusCode;
use serde_json::json;
use shared::payment_events::{EventOutcome, Settlement};
use test_support::{TestApp, TestResponse};

use super::{
    balances, ledger_of, order, shop, status_of, stored_events, stripe_fake, stripe_payments_app,
};
use crate::helpers::assert_error;

async fn simulate(app: &TestApp, order_id: &str, token: &str, outcome: &str) -> TestResponse {
    app.post(
        &format!("/api/v1/dev/orders/{order_id}/payment"),
        Some(token),
        json!({ "outcome": outcome }),
    )
    .await
}

#[tokio::test]
async fn a_buyer_declares_the_payment_and_the_payment_event_job_applies_it() {
    let app = TestApp::spawn().await;
    let shop = shop(&app, 1_000, 5).await;
    let order_id = order(&app, &shop, 2).await;

    let failed = simulate(&app, &order_id, &shop.buyer, "failed").await;
    assert_eq!(failed.status, StatusCode::ACCEPTED, "{}", failed.body);
    assert!(
        failed.body["event_id"]
            .as_str()
            .is_some_and(|id| id.starts_with("evt_dev_")),
        "{}",
        failed.body
    );
    assert_eq!(
        failed.body["order_url"],
        format!("/api/v1/orders/{order_id}")
    );
    assert_eq!(
        app.run_payment_event_jobs().await,
        [Some(EventOutcome::Unchanged {
            intent_status: "requires_payment_method".into()
        })]
    );
    assert_eq!(status_of(&app, &order_id).await.0, "pending_payment");

    let paid = simulate(&app, &order_id, &shop.buyer, "succeeded").await;
    assert_eq!(paid.status, StatusCode::ACCEPTED, "{}", paid.body);
    assert_eq!(
        app.run_payment_event_jobs().await,
        [Some(EventOutcome::Settled {
            settlement: Settlement::Paid
        })]
    );

    assert_eq!(status_of(&app, &order_id).await.0, "paid");
    assert_eq!(app.stock(&shop.listing).await, (3, 0));
    assert_eq!(ledger_of(&app, &order_id).await, (1_800, 2));
    assert_eq!(
        balances(&app, &shop.seller).await,
        [("usd".to_owned(), 1_800)]
    );
    assert_error(
        &simulate(&app, &order_id, &shop.buyer, "succeeded").await,
        StatusCode::CONFLICT,
        "order_not_pending",
    );
    app.assert_stock_invariant().await;
}

#[tokio::test]
async fn only_the_buyer_may_declare_a_payment_and_only_a_known_outcome() {
    let app = TestApp::spawn().await;
    let shop = shop(&app, 1_000, 5).await;
    let (_, stranger) = app.signed_up("stranger").await;
    let order_id = order(&app, &shop, 1).await;

    for token in [&shop.seller, &stranger] {
        assert_error(
            &simulate(&app, &order_id, token, "succeeded").await,
            StatusCode::NOT_FOUND,
            "order_not_found",
        );
    }
    let bogus = simulate(&app, &order_id, &shop.buyer, "maybe").await;
    assert!(bogus.status.is_client_error(), "{}", bogus.body);
    let anonymous = app
        .post(
            &format!("/api/v1/dev/orders/{order_id}/payment"),
            None,
            json!({ "outcome": "succeeded" }),
        )
        .await;
    assert_error(&anonymous, StatusCode::UNAUTHORIZED, "unauthorized");

    assert_eq!(stored_events(&app).await, 0);
    assert_eq!(status_of(&app, &order_id).await.0, "pending_payment");
    app.assert_stock_invariant().await;
}

#[tokio::test]
async fn with_stripe_configured_the_development_route_does_not_exist() {
    let (server, _) = stripe_fake().await;
    let app = stripe_payments_app(&server).await;
    let shop = shop(&app, 1_000, 5).await;
    let order_id = order(&app, &shop, 1).await;

    let resp = simulate(&app, &order_id, &shop.buyer, "succeeded").await;

    assert_error(&resp, StatusCode::NOT_FOUND, "not_found");
    assert_eq!(stored_events(&app).await, 0);
    assert_eq!(status_of(&app, &order_id).await.0, "pending_payment");
    app.assert_stock_invariant().await;
}
