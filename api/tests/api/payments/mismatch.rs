//! A PaymentIntent that does not match its order never settles it: on every path that reads an
//! intent (webhook, expiry, cancel, late refund) the money is refunded and the mismatch
//! recorded, while the order stays as it was (or closes as it would have anyway).

use poem::http::StatusCode;
use serde_json::Value;
use shared::{
    metrics::PAYMENT_MISMATCHES,
    payment_events::{EventOutcome, Settlement},
};
use test_support::{
    TestApp,
    stripe::{field, form, header, remember_intent},
};
use uuid::Uuid;
use wiremock::ResponseTemplate;

use super::{
    Endpoint, Shop, calls, deliver, intent_of, ledger_of, make_overdue, order, shop, status_of,
    stripe_fake, stripe_payments_app, succeeded_event,
};

/// `(source, fields, refund_id, reports)` of the recorded mismatch of intent `intent`.
async fn recorded(
    app: &TestApp,
    intent: &str,
) -> Option<(String, Vec<String>, Option<String>, i32)> {
    let row: Option<(String, Value, Option<String>, i32)> = sqlx::query_as(
        "SELECT source, mismatches, refund_id, reports FROM payment_mismatches
         WHERE payment_intent_id = $1",
    )
    .bind(intent)
    .fetch_optional(app.pool())
    .await
    .expect("mismatch row");
    row.map(|(source, mismatches, refund, reports)| {
        let fields = mismatches
            .as_array()
            .expect("array")
            .iter()
            .map(|m| m["field"].as_str().unwrap().to_owned())
            .collect();
        (source, fields, refund, reports)
    })
}

fn mismatch_count(source: &'static str, field: &'static str) -> u64 {
    PAYMENT_MISMATCHES.get([source, field]).unwrap_or(0)
}

/// Makes the fake's intent for `order_id` carry `amount` in `currency` from now on, as an intent
/// changed behind our back would.
fn tamper(intent: &str, order_id: &str, amount: i64, currency: &str) {
    remember_intent(intent, amount, currency, order_id);
}

/// The order's reserved units must still be held and nothing sold.
async fn assert_untouched(app: &TestApp, shop: &Shop, order_id: &str, reserved: i32) {
    assert_eq!(status_of(app, order_id).await.0, "pending_payment");
    assert_eq!(app.stock(&shop.listing).await, (5, reserved));
    assert_eq!(ledger_of(app, order_id).await, (0, 0), "no money credited");
}

#[tokio::test]
async fn a_signed_success_for_one_eur_never_pays_a_large_usd_order_and_is_refunded() {
    let (server, intents) = stripe_fake().await;
    let app = stripe_payments_app(&server).await;
    let shop = shop(&app, 6_250_000, 5).await;
    let order_id = order(&app, &shop, 2).await;
    let intent = intent_of(&app, &order_id).await;
    tamper(&intent, &order_id, 100, "eur");
    intents.set(&intent, "succeeded");
    let before = mismatch_count("webhook", "currency");
    let event = succeeded_event(&intent);

    let resp = app.post_signed_event(&event).await;
    let outcomes = app.run_payment_event_jobs().await;

    assert_eq!(resp.status, StatusCode::OK, "{}", resp.body);
    assert_eq!(
        outcomes,
        [Some(EventOutcome::Settled {
            settlement: Settlement::Mismatched
        })]
    );
    assert_untouched(&app, &shop, &order_id, 2).await;
    let refunds = calls(&server, "POST", "/v1/refunds").await;
    assert_eq!(refunds.len(), 1, "the 1 EUR goes back");
    assert_eq!(
        header(&refunds[0], "idempotency-key"),
        Some(format!("intent-{intent}-mismatch-refund").as_str())
    );
    let (source, fields, refund, reports) = recorded(&app, &intent).await.expect("recorded");
    assert_eq!(source, "webhook");
    assert_eq!(fields, ["amount", "amount_received", "currency"]);
    assert!(refund.is_some(), "the refund id is kept");
    assert_eq!(reports, 1);
    assert!(mismatch_count("webhook", "currency") > before);
    // The order stays payable until it expires: the spent intent is replaced by a fresh one
    // for the right amount, which the buyer can pay.
    let fresh = intent_of(&app, &order_id).await;
    assert_ne!(fresh, intent, "a new PaymentIntent");
    let created = calls(&server, "POST", "/v1/payment_intents").await;
    let replacement = created.last().expect("a create call");
    assert_eq!(field(&form(replacement), "amount"), Some("12500000"));
    assert_eq!(field(&form(replacement), "currency"), Some("usd"));
    assert_eq!(
        header(replacement, "idempotency-key"),
        Some(format!("order-{order_id}-pi-after-{intent}").as_str())
    );
    let view = app
        .get(&format!("/api/v1/orders/{order_id}"), Some(&shop.buyer))
        .await;
    assert_eq!(view.body["status"], "pending_payment", "{}", view.body);
    assert_eq!(view.body["payment_intent_id"], fresh);
    assert!(view.body["client_secret"].is_string(), "{}", view.body);
    intents.set(&fresh, "succeeded");
    let paid = succeeded_event(&fresh);
    assert_eq!(
        deliver(&app, &paid).await,
        [Some(EventOutcome::Settled {
            settlement: Settlement::Paid
        })]
    );
    assert_eq!(status_of(&app, &order_id).await.0, "paid");
    app.assert_stock_invariant().await;
}

#[tokio::test]
async fn a_mismatching_event_delivered_twice_and_retried_is_refunded_with_one_key() {
    let (server, intents) = stripe_fake().await;
    let app = stripe_payments_app(&server).await;
    let shop = shop(&app, 1_000, 5).await;
    let order_id = order(&app, &shop, 2).await;
    let intent = intent_of(&app, &order_id).await;
    // The right amount and currency, but made for another order.
    tamper(&intent, &Uuid::now_v7().to_string(), 2_000, "usd");
    intents.set(&intent, "succeeded");
    for _ in 0..2 {
        let event = succeeded_event(&intent);
        let resp = app.post_signed_event(&event).await;
        assert_eq!(resp.body["status"], "stored", "{}", resp.body);
    }
    intents.fail(Endpoint::Refund, ResponseTemplate::new(503));

    let failing = app.run_payment_event_jobs().await;
    intents.restore(Endpoint::Refund);
    let retried = app.run_payment_event_jobs().await;

    assert_eq!(failing, [None, None], "both retried later");
    assert_eq!(
        retried[0],
        Some(EventOutcome::Settled {
            settlement: Settlement::Mismatched
        })
    );
    assert!(
        matches!(&retried[1], Some(EventOutcome::Ignored { .. })),
        "the spent intent belongs to no order any more: {retried:?}"
    );
    assert_untouched(&app, &shop, &order_id, 2).await;
    let refunds = calls(&server, "POST", "/v1/refunds").await;
    assert_eq!(refunds.len(), 3, "two failed attempts and one refund");
    let key = format!("intent-{intent}-mismatch-refund");
    assert!(
        refunds
            .iter()
            .all(|r| header(r, "idempotency-key") == Some(key.as_str())),
        "Stripe refunds one key once"
    );
    let (_, fields, refund, reports) = recorded(&app, &intent).await.expect("recorded");
    assert_eq!(fields, ["order_ref"]);
    assert!(refund.is_some());
    assert_eq!(reports, 3, "every report is counted");
    app.assert_stock_invariant().await;
}

#[tokio::test]
async fn an_event_whose_embedded_intent_lacks_the_amount_is_checked_against_stripe() {
    let (server, intents) = stripe_fake().await;
    let app = stripe_payments_app(&server).await;
    let shop = shop(&app, 1_000, 5).await;
    let order_id = order(&app, &shop, 1).await;
    let intent = intent_of(&app, &order_id).await;
    tamper(&intent, &order_id, 1, "usd");
    intents.set(&intent, "succeeded");
    let mut event = succeeded_event(&intent);
    event["data"]["object"]
        .as_object_mut()
        .unwrap()
        .remove("amount");

    deliver(&app, &event).await;

    let retrieved = calls(&server, "GET", &format!("/v1/payment_intents/{intent}")).await;
    assert_eq!(retrieved.len(), 1, "Stripe was asked");
    assert_untouched(&app, &shop, &order_id, 1).await;
    let (_, fields, _, _) = recorded(&app, &intent).await.expect("recorded");
    assert_eq!(fields, ["amount", "amount_received"]);
}

#[tokio::test]
async fn expiry_refunds_a_mismatching_success_and_expires_the_order() {
    let (server, intents) = stripe_fake().await;
    let app = stripe_payments_app(&server).await;
    let shop = shop(&app, 1_000, 5).await;
    let order_id = order(&app, &shop, 2).await;
    let intent = intent_of(&app, &order_id).await;
    tamper(&intent, &order_id, 2_000, "eur");
    intents.set(&intent, "succeeded");
    make_overdue(&app, &order_id).await;

    let report = app.run_expiry().await;

    assert_eq!((report.mismatched, report.expired, report.paid), (1, 1, 0));
    assert_eq!(
        status_of(&app, &order_id).await,
        ("expired".into(), Some("payment_timeout".into()))
    );
    assert_eq!(app.stock(&shop.listing).await, (5, 0), "units released");
    assert_eq!(ledger_of(&app, &order_id).await, (0, 0));
    assert_eq!(calls(&server, "POST", "/v1/refunds").await.len(), 1);
    let (source, fields, _, _) = recorded(&app, &intent).await.expect("recorded");
    assert_eq!(
        (source.as_str(), fields),
        ("expiry", vec!["currency".to_owned()])
    );
    app.assert_stock_invariant().await;
}

#[tokio::test]
async fn a_buyers_cancel_refunds_a_mismatching_success_and_cancels() {
    let (server, intents) = stripe_fake().await;
    let app = stripe_payments_app(&server).await;
    let shop = shop(&app, 1_000, 5).await;
    let order_id = order(&app, &shop, 2).await;
    let intent = intent_of(&app, &order_id).await;
    tamper(&intent, &order_id, 1_999, "usd");
    intents.set(&intent, "succeeded");

    let resp = app
        .post(
            &format!("/api/v1/orders/{order_id}/cancel"),
            Some(&shop.buyer),
            serde_json::json!({}),
        )
        .await;

    assert!(resp.status.is_success(), "{} {}", resp.status, resp.body);
    assert_eq!(status_of(&app, &order_id).await.0, "cancelled");
    assert_eq!(app.stock(&shop.listing).await, (5, 0));
    assert_eq!(ledger_of(&app, &order_id).await, (0, 0));
    assert_eq!(calls(&server, "POST", "/v1/refunds").await.len(), 1);
    let (source, fields, _, _) = recorded(&app, &intent).await.expect("recorded");
    assert_eq!(source, "cancel");
    assert_eq!(fields, ["amount", "amount_received"]);
    app.assert_stock_invariant().await;
}

#[tokio::test]
async fn a_mismatching_late_payment_is_refunded_without_ledger_entries() {
    let (server, intents) = stripe_fake().await;
    let app = stripe_payments_app(&server).await;
    let shop = shop(&app, 1_000, 5).await;
    let order_id = order(&app, &shop, 2).await;
    let intent = intent_of(&app, &order_id).await;
    make_overdue(&app, &order_id).await;
    app.run_expiry().await;
    assert_eq!(status_of(&app, &order_id).await.0, "expired");
    tamper(&intent, &order_id, 5, "usd");
    intents.set(&intent, "succeeded");
    let event = succeeded_event(&intent);

    let outcomes = deliver(&app, &event).await;

    assert_eq!(
        outcomes,
        [Some(EventOutcome::Settled {
            settlement: Settlement::Mismatched
        })]
    );
    assert_eq!(status_of(&app, &order_id).await.0, "expired");
    assert_eq!(ledger_of(&app, &order_id).await, (0, 0), "no sale recorded");
    assert_eq!(calls(&server, "POST", "/v1/refunds").await.len(), 1);
    let (source, _, _, _) = recorded(&app, &intent).await.expect("recorded");
    assert_eq!(source, "late_refund");
    app.assert_stock_invariant().await;
}
