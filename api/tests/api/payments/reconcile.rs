//! `reconcile_payments`: settled orders whose ledger or Stripe payment disagrees with them are
//! reported; orders refunded in every way we know stay clean.

use std::time::Duration;

use shared::{
    metrics::PAYMENT_DRIFT,
    payment_events::reconcile::{PaymentReconcileReport, reconcile_payments},
};
use test_support::{TestApp, stripe::remember_intent};
use uuid::Uuid;

use super::{
    deliver, event_id, intent_of, order, pay, shop, stripe_event, stripe_fake, stripe_payments_app,
};

async fn reconcile(app: &TestApp) -> PaymentReconcileReport {
    reconcile_payments(&app.payment_deps(), Duration::from_secs(3_600), 500)
        .await
        .expect("reconciliation ran")
}

#[tokio::test]
async fn reconciliation_passes_settled_orders_and_catches_planted_drift() {
    let (server, intents) = stripe_fake().await;
    let app = stripe_payments_app(&server).await;
    let shop = shop(&app, 1_000, 20).await;
    let plain = order(&app, &shop, 2).await;
    let refunded_by_line = order(&app, &shop, 1).await;
    let refunded_outside = order(&app, &shop, 1).await;
    for id in [&plain, &refunded_by_line, &refunded_outside] {
        pay(&app, &intents, id).await;
    }
    let resp = app
        .request(
            "POST",
            &format!("/api/v1/orders/{refunded_by_line}/refund"),
            Some(&shop.buyer),
            None,
        )
        .await;
    assert!(resp.status.is_success(), "{}", resp.body);
    app.run_refund_jobs().await;
    let intent = intent_of(&app, &refunded_outside).await;
    let partial = stripe_event(
        &event_id(),
        "charge.refunded",
        serde_json::json!({
            "id": "ch_partial", "object": "charge", "payment_intent": intent,
            "amount": 1_000, "amount_refunded": 300, "currency": "usd"
        }),
    );
    deliver(&app, &partial).await;

    let clean = reconcile(&app).await;
    assert_eq!(
        clean,
        PaymentReconcileReport {
            checked: 3,
            ..PaymentReconcileReport::default()
        }
    );

    // A lost ledger entry, and an intent whose amount changed at Stripe.
    sqlx::query("DELETE FROM ledger_entries WHERE order_id = $1 AND kind = 'sale'")
        .bind(plain.parse::<Uuid>().unwrap())
        .execute(app.pool())
        .await
        .unwrap();
    let paid_intent = intent_of(&app, &refunded_outside).await;
    remember_intent(&paid_intent, 999, "usd", &refunded_outside);

    let drifted = reconcile(&app).await;

    assert_eq!(
        drifted,
        PaymentReconcileReport {
            checked: 3,
            ledger_drift: 1,
            stripe_drift: 1,
            unchecked: 0,
        }
    );
    assert_eq!(PAYMENT_DRIFT.get(["ledger"]), Some(1));
    assert_eq!(PAYMENT_DRIFT.get(["stripe"]), Some(1));
}
