//! Money moved in Stripe without us: dashboard refunds (full and partial) and disputes reach the
//! order, its lines and the ledger exactly once, duplicated and out of order.

use serde_json::{Value, json};
use shared::{
    orders::refund::RefundOutcome,
    payment_events::{EventOutcome, Settlement},
};
use test_support::TestApp;
use uuid::Uuid;

use super::{
    Shop, balances, deliver, event_id, intent_of, ledger_of, line_statuses, order, pay, shop,
    status_of, stripe_event, stripe_fake, stripe_payments_app,
};
use crate::{checkout::accepted_job, helpers::count};

fn event(event_type: &str, object: Value) -> Value {
    stripe_event(&event_id(), event_type, object)
}

/// `charge.refunded` for the charge of `intent`, with Stripe's cumulative `amount_refunded`.
fn charge_refunded(intent: &str, amount: i64, refunded: i64) -> Value {
    event(
        "charge.refunded",
        json!({
            "id": format!("ch_{}", intent.trim_start_matches("pi_")),
            "object": "charge",
            "payment_intent": intent,
            "amount": amount,
            "amount_refunded": refunded,
            "currency": "usd",
            "refunded": refunded == amount,
        }),
    )
}

fn dispute(event_type: &str, id: &str, intent: &str, status: &str) -> Value {
    event(
        event_type,
        json!({
            "id": id,
            "object": "dispute",
            "payment_intent": intent,
            "charge": format!("ch_{}", intent.trim_start_matches("pi_")),
            "amount": 2_000,
            "currency": "usd",
            "reason": "fraudulent",
            "status": status,
        }),
    )
}

fn settled(settlement: Settlement) -> Vec<Option<EventOutcome>> {
    vec![Some(EventOutcome::Settled { settlement })]
}

/// A paid order of 2 × 10.00 from one seller; returns it with its intent.
async fn paid_order(app: &TestApp, intents: &super::Intents) -> (Shop, String, String) {
    let shop = shop(app, 1_000, 5).await;
    let order_id = order(app, &shop, 2).await;
    pay(app, intents, &order_id).await;
    let intent = intent_of(app, &order_id).await;
    (shop, order_id, intent)
}

async fn refunded_cents(app: &TestApp, order_id: &str) -> i64 {
    sqlx::query_scalar("SELECT refunded_cents FROM orders WHERE id = $1")
        .bind(order_id.parse::<Uuid>().unwrap())
        .fetch_one(app.pool())
        .await
        .expect("refunded_cents")
}

#[tokio::test]
async fn a_full_dashboard_refund_ends_the_order_refunded_and_takes_the_credit_back() {
    let (server, intents) = stripe_fake().await;
    let app = stripe_payments_app(&server).await;
    let (shop, order_id, intent) = paid_order(&app, &intents).await;
    assert_eq!(balances(&app, &shop.seller).await, [("usd".into(), 1_800)]);

    let outcomes = deliver(&app, &charge_refunded(&intent, 2_000, 2_000)).await;

    assert_eq!(outcomes, settled(Settlement::RefundedOutside));
    assert_eq!(
        status_of(&app, &order_id).await,
        ("refunded".into(), Some("refunded_outside".into()))
    );
    assert_eq!(line_statuses(&app, &order_id).await, ["refunded"]);
    assert_eq!(
        app.stock(&shop.listing).await,
        (5, 0),
        "units back in stock"
    );
    assert_eq!(balances(&app, &shop.seller).await, [("usd".into(), 0)]);
    assert_eq!(
        ledger_of(&app, &order_id).await.0,
        0,
        "the order nets to zero"
    );
    assert_eq!(refunded_cents(&app, &order_id).await, 2_000);
    // Stripe repeats itself, or an older partial report arrives late: nothing moves again.
    for late in [
        charge_refunded(&intent, 2_000, 2_000),
        charge_refunded(&intent, 2_000, 500),
    ] {
        assert_eq!(
            deliver(&app, &late).await,
            settled(Settlement::AlreadySettled)
        );
    }
    assert_eq!(balances(&app, &shop.seller).await, [("usd".into(), 0)]);
    assert_eq!(app.stock(&shop.listing).await, (5, 0));
    app.assert_stock_invariant().await;
}

#[tokio::test]
async fn partial_dashboard_refunds_are_recorded_once_whatever_the_order_of_their_events() {
    let (server, intents) = stripe_fake().await;
    let app = stripe_payments_app(&server).await;
    let (shop, order_id, intent) = paid_order(&app, &intents).await;

    // Two partial refunds (5.00, then 7.00 more): Stripe reports 1200 cumulated first, then
    // the older 500, then the 1200 again.
    let newest = deliver(&app, &charge_refunded(&intent, 2_000, 1_200)).await;
    let older = deliver(&app, &charge_refunded(&intent, 2_000, 500)).await;
    let again = deliver(&app, &charge_refunded(&intent, 2_000, 1_200)).await;

    assert_eq!(newest, settled(Settlement::PartlyRefundedOutside));
    assert_eq!(older, settled(Settlement::AlreadySettled));
    assert_eq!(again, settled(Settlement::AlreadySettled));
    assert_eq!(status_of(&app, &order_id).await.0, "partially_refunded");
    assert_eq!(refunded_cents(&app, &order_id).await, 1_200);
    // The ledger holds what Stripe holds: 2000 paid − 1200 refunded − 200 fee.
    assert_eq!(ledger_of(&app, &order_id).await.0, 600);
    assert_eq!(app.stock(&shop.listing).await, (3, 0), "goods not returned");
    // The rest refunded later: everything reverses, the earlier partial included.
    let rest = deliver(&app, &charge_refunded(&intent, 2_000, 2_000)).await;
    assert_eq!(rest, settled(Settlement::RefundedOutside));
    assert_eq!(ledger_of(&app, &order_id).await.0, 0);
    assert_eq!(balances(&app, &shop.seller).await, [("usd".into(), 0)]);
    app.assert_stock_invariant().await;
}

#[tokio::test]
async fn our_own_refund_reported_back_by_stripe_is_not_counted_twice() {
    let (server, intents) = stripe_fake().await;
    let app = stripe_payments_app(&server).await;
    let (shop, order_id, intent) = paid_order(&app, &intents).await;
    let refund = app
        .request(
            "POST",
            &format!("/api/v1/orders/{order_id}/refund"),
            Some(&shop.buyer),
            None,
        )
        .await;
    accepted_job(&refund);

    // Stripe's report of our refund overtakes the job that made it: it waits for the job.
    let early = deliver(&app, &charge_refunded(&intent, 2_000, 2_000)).await;
    assert_eq!(early, [None], "retried later");
    assert_eq!(app.run_refund_jobs().await, [RefundOutcome::Refunded]);
    let later = app.run_payment_event_jobs().await;

    assert_eq!(later, settled(Settlement::AlreadySettled));
    assert_eq!(refunded_cents(&app, &order_id).await, 2_000);
    let rows = count(&app, "SELECT count(*) FROM order_refunds").await;
    assert_eq!(rows, 1, "one refund recorded");
    assert_eq!(ledger_of(&app, &order_id).await.0, 0);
    app.assert_stock_invariant().await;
}

#[tokio::test]
async fn a_dispute_holds_the_sellers_funds_and_a_lost_one_keeps_them_debited() {
    let (server, intents) = stripe_fake().await;
    let app = stripe_payments_app(&server).await;
    let (shop, order_id, intent) = paid_order(&app, &intents).await;

    let opened = deliver(
        &app,
        &dispute("charge.dispute.created", "dp_1", &intent, "needs_response"),
    )
    .await;
    let repeated = deliver(
        &app,
        &dispute("charge.dispute.created", "dp_1", &intent, "needs_response"),
    )
    .await;

    assert_eq!(opened, settled(Settlement::DisputeOpened));
    assert_eq!(repeated, settled(Settlement::DisputeOpened));
    assert_eq!(
        balances(&app, &shop.seller).await,
        [("usd".into(), 0)],
        "held once"
    );
    let lost = deliver(
        &app,
        &dispute("charge.dispute.closed", "dp_1", &intent, "lost"),
    )
    .await;
    assert_eq!(lost, settled(Settlement::DisputeLost));
    assert_eq!(balances(&app, &shop.seller).await, [("usd".into(), 0)]);
    assert_eq!(status_of(&app, &order_id).await.0, "paid");
    let stored: String =
        sqlx::query_scalar("SELECT status FROM payment_disputes WHERE id = 'dp_1'")
            .fetch_one(app.pool())
            .await
            .unwrap();
    assert_eq!(stored, "lost");
}

#[tokio::test]
async fn a_won_dispute_releases_the_funds_even_when_its_events_arrive_out_of_order() {
    let (server, intents) = stripe_fake().await;
    let app = stripe_payments_app(&server).await;
    let (shop, _, intent) = paid_order(&app, &intents).await;

    // In order: held, then released.
    deliver(
        &app,
        &dispute("charge.dispute.created", "dp_a", &intent, "needs_response"),
    )
    .await;
    let won = deliver(
        &app,
        &dispute("charge.dispute.closed", "dp_a", &intent, "won"),
    )
    .await;
    assert_eq!(won, settled(Settlement::DisputeWon));
    assert_eq!(balances(&app, &shop.seller).await, [("usd".into(), 1_800)]);

    // Out of order: the outcome first, then the late "created", which must not hold again.
    let closed = deliver(
        &app,
        &dispute("charge.dispute.closed", "dp_b", &intent, "won"),
    )
    .await;
    let late = deliver(
        &app,
        &dispute("charge.dispute.created", "dp_b", &intent, "needs_response"),
    )
    .await;
    assert_eq!(closed, settled(Settlement::DisputeWon));
    assert_eq!(
        late,
        settled(Settlement::DisputeWon),
        "a closed dispute never reopens"
    );
    assert_eq!(balances(&app, &shop.seller).await, [("usd".into(), 1_800)]);
}

#[tokio::test]
async fn refund_events_are_recorded_and_move_no_money_on_their_own() {
    let (server, intents) = stripe_fake().await;
    let app = stripe_payments_app(&server).await;
    let (shop, order_id, intent) = paid_order(&app, &intents).await;

    for (event_type, status) in [("refund.created", "succeeded"), ("refund.failed", "failed")] {
        let refund = event(
            event_type,
            json!({ "id": "re_outside_1", "object": "refund", "payment_intent": intent,
                    "amount": 500, "currency": "usd", "status": status }),
        );
        assert_eq!(
            deliver(&app, &refund).await,
            settled(Settlement::AlreadySettled)
        );
    }

    assert_eq!(status_of(&app, &order_id).await.0, "paid");
    assert_eq!(refunded_cents(&app, &order_id).await, 0);
    assert_eq!(balances(&app, &shop.seller).await, [("usd".into(), 1_800)]);
}
