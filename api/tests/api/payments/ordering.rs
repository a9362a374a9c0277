//! Events late, twice and out of order: the job acts on the PaymentIntent's real state.

use poem::http::StatusCode;
use shared::payment_events::{EventOutcome, Settlement};
use wiremock::ResponseTemplate;

use super::{
    Endpoint, calls, event_id, intent_event, intent_of, ledger_of, line_statuses, order, pay, shop,
    status_of, stripe_fake, stripe_payments_app,
};

#[tokio::test]
async fn a_payment_failed_event_after_the_success_leaves_the_order_paid() {
    let (server, intents) = stripe_fake().await;
    let app = stripe_payments_app(&server).await;
    let shop = shop(&app, 1_000, 5).await;
    let order_id = order(&app, &shop, 2).await;
    let intent = intent_of(&app, &order_id).await;
    // The customer's first card was declined, the second went through; Stripe sends both
    // events, the failure arriving last.
    intents.set(&intent, "succeeded");
    let success = intent_event(
        &event_id(),
        "payment_intent.succeeded",
        &intent,
        "succeeded",
    );
    let failure = intent_event(
        &event_id(),
        "payment_intent.payment_failed",
        &intent,
        "requires_payment_method",
    );
    for event in [&success, &failure] {
        assert_eq!(app.post_signed_event(event).await.status, StatusCode::OK);
    }

    let outcomes = app.run_payment_event_jobs().await;

    assert_eq!(
        outcomes,
        [
            Some(EventOutcome::Settled {
                settlement: Settlement::Paid
            }),
            // The stale failure was checked against Stripe, which says succeeded.
            Some(EventOutcome::Settled {
                settlement: Settlement::AlreadySettled
            }),
        ]
    );
    assert_eq!(status_of(&app, &order_id).await.0, "paid");
    assert_eq!(app.stock(&shop.listing).await, (3, 0));
    assert_eq!(ledger_of(&app, &order_id).await, (1_800, 2));
    let retrieved = calls(&server, "GET", &format!("/v1/payment_intents/{intent}")).await;
    assert_eq!(retrieved.len(), 1, "only the non-final event needed Stripe");
    app.assert_stock_invariant().await;
}

#[tokio::test]
async fn a_stale_failure_processed_first_still_finds_the_payment() {
    let (server, intents) = stripe_fake().await;
    let app = stripe_payments_app(&server).await;
    let shop = shop(&app, 1_000, 5).await;
    let order_id = order(&app, &shop, 1).await;
    let intent = intent_of(&app, &order_id).await;
    intents.set(&intent, "succeeded");
    let failure = intent_event(
        &event_id(),
        "payment_intent.payment_failed",
        &intent,
        "requires_payment_method",
    );
    assert_eq!(app.post_signed_event(&failure).await.status, StatusCode::OK);

    app.run_payment_event_jobs().await;

    assert_eq!(status_of(&app, &order_id).await.0, "paid");
    app.assert_stock_invariant().await;
}

#[tokio::test]
async fn a_failed_payment_keeps_the_order_pending_and_the_buyer_may_pay_again() {
    let (server, intents) = stripe_fake().await;
    let app = stripe_payments_app(&server).await;
    let shop = shop(&app, 1_000, 5).await;
    let order_id = order(&app, &shop, 2).await;
    let intent = intent_of(&app, &order_id).await;
    let failure = intent_event(
        &event_id(),
        "payment_intent.payment_failed",
        &intent,
        "requires_payment_method",
    );
    assert_eq!(app.post_signed_event(&failure).await.status, StatusCode::OK);

    let outcomes = app.run_payment_event_jobs().await;

    assert_eq!(
        outcomes,
        [Some(EventOutcome::Unchanged {
            intent_status: "requires_payment_method".into()
        })]
    );
    assert_eq!(status_of(&app, &order_id).await.0, "pending_payment");
    assert_eq!(line_statuses(&app, &order_id).await, ["awaiting_payment"]);
    assert_eq!(app.stock(&shop.listing).await, (5, 2), "still reserved");
    let view = app
        .get(&format!("/api/v1/orders/{order_id}"), Some(&shop.buyer))
        .await;
    assert!(view.body["client_secret"].is_string(), "can still pay");

    pay(&app, &intents, &order_id).await;
    assert_eq!(app.stock(&shop.listing).await, (3, 0));
    app.assert_stock_invariant().await;
}

#[tokio::test]
async fn processing_leaves_the_order_pending_and_cancellation_releases_it() {
    let (server, intents) = stripe_fake().await;
    let app = stripe_payments_app(&server).await;
    let shop = shop(&app, 1_000, 5).await;
    let order_id = order(&app, &shop, 2).await;
    let intent = intent_of(&app, &order_id).await;
    intents.set(&intent, "processing");
    let processing = intent_event(
        &event_id(),
        "payment_intent.processing",
        &intent,
        "processing",
    );
    assert_eq!(
        app.post_signed_event(&processing).await.status,
        StatusCode::OK
    );
    app.run_payment_event_jobs().await;
    assert_eq!(status_of(&app, &order_id).await.0, "pending_payment");
    let gate = app.gate_counter(&shop.listing).await.expect("gate loaded");

    intents.set(&intent, "canceled");
    let canceled = intent_event(&event_id(), "payment_intent.canceled", &intent, "canceled");
    assert_eq!(
        app.post_signed_event(&canceled).await.status,
        StatusCode::OK
    );
    let outcomes = app.run_payment_event_jobs().await;

    assert_eq!(
        outcomes,
        [Some(EventOutcome::Settled {
            settlement: Settlement::Cancelled
        })]
    );
    assert_eq!(
        status_of(&app, &order_id).await,
        ("cancelled".into(), Some("payment_canceled".into()))
    );
    assert_eq!(app.stock(&shop.listing).await, (5, 0));
    assert_eq!(app.gate_counter(&shop.listing).await, Some(gate + 2));
    app.assert_stock_invariant().await;
}

#[tokio::test]
async fn a_stripe_outage_while_checking_the_state_is_retried_not_lost() {
    let (server, intents) = stripe_fake().await;
    let app = stripe_payments_app(&server).await;
    let shop = shop(&app, 1_000, 5).await;
    let order_id = order(&app, &shop, 1).await;
    let intent = intent_of(&app, &order_id).await;
    intents.set(&intent, "succeeded");
    intents.fail(Endpoint::Retrieve, ResponseTemplate::new(503));
    let processing = intent_event(
        &event_id(),
        "payment_intent.processing",
        &intent,
        "processing",
    );
    assert_eq!(
        app.post_signed_event(&processing).await.status,
        StatusCode::OK
    );

    assert_eq!(app.run_payment_event_jobs().await, [None], "to be retried");
    let (attempts, processed, error): (i32, bool, Option<String>) =
        sqlx::query_as("SELECT attempts, processed_at IS NOT NULL, error FROM webhook_events")
            .fetch_one(app.pool())
            .await
            .unwrap();
    assert_eq!((attempts, processed), (1, false));
    assert!(error.is_some_and(|e| e.contains("temporarily unavailable")));
    intents.restore(Endpoint::Retrieve);

    app.run_payment_event_jobs().await;
    assert_eq!(status_of(&app, &order_id).await.0, "paid");
    app.assert_stock_invariant().await;
}
