//! The webhook endpoint: signatures over the raw body, storage, deduplication.

use std::sync::Arc;

use futures::future::join_all;
use poem::http::StatusCode;
use serde_json::json;
use shared::payment_events::{EventOutcome, Settlement};
use test_support::{TEST_WEBHOOK_SECRET, TestApp, stripe_signature};

use super::{
    balances, calls, event_id, intent_event, intent_of, ledger_of, line_statuses, order, pay,
    pushed_event_tasks, shop, status_of, stored_events, stripe_fake, stripe_payments_app,
    succeeded_event,
};
use crate::helpers::assert_error;

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

#[tokio::test]
async fn a_signed_success_event_marks_the_order_paid_and_credits_the_seller() {
    let (server, intents) = stripe_fake().await;
    let app = stripe_payments_app(&server).await;
    let shop = shop(&app, 1_000, 5).await;
    let order_id = order(&app, &shop, 2).await;
    let intent = intent_of(&app, &order_id).await;
    assert_eq!(app.stock(&shop.listing).await, (5, 2));
    let gate_before = app.gate_counter(&shop.listing).await;
    intents.set(&intent, "succeeded");

    let event = intent_event(
        &event_id(),
        "payment_intent.succeeded",
        &intent,
        "succeeded",
    );
    let resp = app.post_signed_event(&event).await;

    assert_eq!(resp.status, StatusCode::OK, "{}", resp.body);
    assert_eq!(resp.body["status"], "stored");
    assert_eq!(stored_events(&app).await, 1);
    assert_eq!(pushed_event_tasks(&app).await, 1);
    assert_eq!(
        status_of(&app, &order_id).await.0,
        "pending_payment",
        "not applied in the api"
    );

    let outcomes = app.run_payment_event_jobs().await;

    assert_eq!(
        outcomes,
        [Some(EventOutcome::Settled {
            settlement: Settlement::Paid
        })]
    );
    let view = app
        .get(&format!("/api/v1/orders/{order_id}"), Some(&shop.buyer))
        .await;
    assert_eq!(view.body["status"], "paid", "{}", view.body);
    assert_eq!(view.body["client_secret"], serde_json::Value::Null);
    assert_eq!(line_statuses(&app, &order_id).await, ["awaiting_shipment"]);
    assert_eq!(
        app.stock(&shop.listing).await,
        (3, 0),
        "sold units left the stock"
    );
    assert_eq!(
        app.gate_counter(&shop.listing).await,
        gate_before,
        "gate unchanged"
    );
    // 2 × 10.00 minus the default 10 % platform fee.
    assert_eq!(ledger_of(&app, &order_id).await, (1_800, 2));
    assert_eq!(
        balances(&app, &shop.seller).await,
        [("usd".to_owned(), 1_800)]
    );
    assert!(balances(&app, &shop.buyer).await.is_empty());
    // A signed final state cannot be stale, so Stripe was not asked again.
    let retrieved = calls(&server, "GET", &format!("/v1/payment_intents/{intent}")).await;
    assert!(retrieved.is_empty());
    assert_eq!(
        event_record(&app).await,
        vec![(1, true, None)],
        "one delivery, counted once, processed without an error"
    );
    app.assert_stock_invariant().await;
}

/// Every stored event's (attempts, processed, error), in the order received.
async fn event_record(app: &TestApp) -> Vec<(i32, bool, Option<String>)> {
    sqlx::query_as(
        "SELECT attempts, processed_at IS NOT NULL, error FROM webhook_events
         ORDER BY received_at, id",
    )
    .fetch_all(app.pool())
    .await
    .expect("webhook events")
}

#[tokio::test]
async fn a_second_success_event_for_a_paid_order_is_counted_once_and_changes_nothing() {
    let (server, intents) = stripe_fake().await;
    let app = stripe_payments_app(&server).await;
    let shop = shop(&app, 1_000, 5).await;
    let order_id = order(&app, &shop, 2).await;
    pay(&app, &intents, &order_id).await;
    // Stripe sends the same success again under another event id (a replayed endpoint, a
    // second webhook endpoint): a paid order is not paid twice.
    let second = succeeded_event(&intent_of(&app, &order_id).await);
    assert_eq!(app.post_signed_event(&second).await.status, StatusCode::OK);

    let outcomes = app.run_payment_event_jobs().await;

    assert_eq!(
        outcomes,
        [Some(EventOutcome::Settled {
            settlement: Settlement::AlreadySettled
        })]
    );
    assert_eq!(
        event_record(&app).await,
        vec![
            (1, true, None),
            (1, true, Some("order already settled".to_owned()))
        ]
    );
    assert_eq!(app.stock(&shop.listing).await, (3, 0));
    assert_eq!(
        ledger_of(&app, &order_id).await,
        (1_800, 2),
        "credited once"
    );
    app.assert_stock_invariant().await;
}

#[tokio::test]
async fn bad_signatures_and_unreadable_payloads_are_400_and_change_nothing() {
    let (server, intents) = stripe_fake().await;
    let app = stripe_payments_app(&server).await;
    let shop = shop(&app, 1_000, 5).await;
    let order_id = order(&app, &shop, 2).await;
    let intent = intent_of(&app, &order_id).await;
    intents.set(&intent, "succeeded");
    let event = intent_event(
        &event_id(),
        "payment_intent.succeeded",
        &intent,
        "succeeded",
    );
    let body = serde_json::to_vec(&event).unwrap();
    let tampered = String::from_utf8(body.clone())
        .unwrap()
        .replace("\"amount\":2000", "\"amount\":1")
        .into_bytes();
    assert_ne!(tampered, body);
    let not_json = b"{\"id\": \"evt_1\", this is not json".to_vec();

    let cases: Vec<(&str, Vec<u8>, Option<String>, &str)> = vec![
        (
            "wrong secret",
            body.clone(),
            Some(stripe_signature("whsec_someone_else", now(), &body)),
            "invalid_signature",
        ),
        (
            "stale timestamp",
            body.clone(),
            Some(stripe_signature(TEST_WEBHOOK_SECRET, now() - 301, &body)),
            "invalid_signature",
        ),
        (
            "tampered body",
            tampered,
            Some(stripe_signature(TEST_WEBHOOK_SECRET, now(), &body)),
            "invalid_signature",
        ),
        ("no header", body.clone(), None, "invalid_signature"),
        (
            "garbage header",
            body.clone(),
            Some("v1=,t=yesterday".to_owned()),
            "invalid_signature",
        ),
        (
            "signed, but not an event",
            not_json.clone(),
            Some(stripe_signature(TEST_WEBHOOK_SECRET, now(), &not_json)),
            "invalid_payload",
        ),
    ];
    for (case, body, signature, code) in cases {
        let resp = app.post_stripe_webhook(&body, signature.as_deref()).await;
        assert_error(&resp, StatusCode::BAD_REQUEST, code);
        assert_eq!(stored_events(&app).await, 0, "{case}");
    }

    assert_eq!(pushed_event_tasks(&app).await, 0);
    assert_eq!(status_of(&app, &order_id).await.0, "pending_payment");
    assert_eq!(app.stock(&shop.listing).await, (5, 2));
    assert_eq!(ledger_of(&app, &order_id).await, (0, 0));
    app.assert_stock_invariant().await;
}

#[tokio::test]
async fn the_raw_bytes_are_verified_whatever_their_whitespace_and_key_order() {
    let (server, intents) = stripe_fake().await;
    let app = stripe_payments_app(&server).await;
    let shop = shop(&app, 1_000, 5).await;
    let order_id = order(&app, &shop, 1).await;
    let intent = intent_of(&app, &order_id).await;
    // The embedded intent carries no amount, so it is not trusted on its own: the job asks
    // Stripe, which says it succeeded for the order's amount.
    intents.set(&intent, "succeeded");
    // Keys out of order, odd spacing, tabs, a newline and an escaped slash: re-serialising this
    // would change the bytes and break the signature.
    let body = format!(
        "{{\n  \"type\" :\"payment_intent.succeeded\",\t\"data\":{{ \"object\" : {{\"status\":\"succeeded\",  \"object\":\"payment_intent\",\"id\":\"{intent}\", \"note\":\"a\\/b\"}} }} ,\"id\":\"evt_oddly_formatted\" }}\n"
    );
    let signature = stripe_signature(TEST_WEBHOOK_SECRET, now(), body.as_bytes());

    let resp = app
        .post_stripe_webhook(body.as_bytes(), Some(&signature))
        .await;

    assert_eq!(resp.status, StatusCode::OK, "{}", resp.body);
    assert_eq!(resp.body["status"], "stored");
    app.run_payment_event_jobs().await;
    assert_eq!(status_of(&app, &order_id).await.0, "paid");
    app.assert_stock_invariant().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_same_event_delivered_three_times_concurrently_is_applied_once() {
    let (server, intents) = stripe_fake().await;
    let app = Arc::new(stripe_payments_app(&server).await);
    let shop = shop(&app, 1_000, 5).await;
    let order_id = order(&app, &shop, 2).await;
    let intent = intent_of(&app, &order_id).await;
    intents.set(&intent, "succeeded");
    let id = event_id();
    let event = intent_event(&id, "payment_intent.succeeded", &intent, "succeeded");

    let deliveries = join_all((0..3).map(|_| {
        let app = Arc::clone(&app);
        let event = event.clone();
        tokio::spawn(async move { app.post_signed_event(&event).await })
    }))
    .await;

    let mut acks: Vec<String> = deliveries
        .into_iter()
        .map(|r| {
            let resp = r.expect("delivery task");
            assert_eq!(resp.status, StatusCode::OK, "{}", resp.body);
            resp.body["status"].as_str().unwrap().to_owned()
        })
        .collect();
    acks.sort();
    assert_eq!(acks, ["duplicate", "duplicate", "stored"]);
    assert_eq!(stored_events(&app).await, 1);
    assert_eq!(pushed_event_tasks(&app).await, 1, "one job for one event");

    // The job itself delivered three times at once (redelivery after a crash, the sweeper).
    let deps = app.payment_deps();
    let runs = join_all((0..3).map(|_| {
        let deps = deps.clone();
        let id = id.clone();
        tokio::spawn(async move { shared::payment_events::process(&deps, &id).await })
    }))
    .await;
    let paid = runs
        .into_iter()
        .map(|r| r.expect("job task").expect("job ran"))
        .filter(|o| {
            *o == EventOutcome::Settled {
                settlement: Settlement::Paid,
            }
        })
        .count();

    assert_eq!(paid, 1);
    assert_eq!(status_of(&app, &order_id).await.0, "paid");
    assert_eq!(app.stock(&shop.listing).await, (3, 0));
    assert_eq!(ledger_of(&app, &order_id).await, (1_800, 2));
    // A later redelivery finds the event processed.
    assert!(app.run_payment_event_jobs().await.is_empty());
    // Only the paying delivery counted: a losing one finds the order paid and the event
    // processed in the same commit, so it writes nothing.
    assert_eq!(event_record(&app).await, vec![(1, true, None)]);
    app.assert_stock_invariant().await;
}

#[tokio::test]
async fn events_we_do_not_act_on_are_acknowledged_and_not_stored() {
    let (server, _) = stripe_fake().await;
    let app = stripe_payments_app(&server).await;
    let shop = shop(&app, 1_000, 5).await;
    let order_id = order(&app, &shop, 1).await;
    let intent = intent_of(&app, &order_id).await;
    let foreign = intent_event(
        &event_id(),
        "payment_intent.succeeded",
        "pi_3QxNotOursAtAll0000000",
        "succeeded",
    );
    let mut charge = intent_event(&event_id(), "charge.succeeded", &intent, "succeeded");
    charge["data"]["object"] = json!({ "id": "ch_3QxR2bLkdIwHu7ix0xyz1234", "object": "charge" });
    let created = intent_event(
        &event_id(),
        "payment_intent.created",
        &intent,
        "requires_payment_method",
    );

    for event in [foreign, charge, created] {
        let resp = app.post_signed_event(&event).await;
        assert_eq!(resp.status, StatusCode::OK, "{}", resp.body);
        assert_eq!(resp.body["status"], "ignored", "{}", event["type"]);
    }

    assert_eq!(stored_events(&app).await, 0);
    assert_eq!(pushed_event_tasks(&app).await, 0);
    assert_eq!(status_of(&app, &order_id).await.0, "pending_payment");
    app.assert_stock_invariant().await;
}

#[tokio::test]
async fn without_a_webhook_secret_the_endpoint_refuses_every_event() {
    let app = TestApp::spawn().await;
    let body = serde_json::to_vec(&intent_event(
        &event_id(),
        "payment_intent.succeeded",
        "pi_dev_x",
        "succeeded",
    ))
    .unwrap();
    let signature = stripe_signature(TEST_WEBHOOK_SECRET, now(), &body);

    let resp = app.post_stripe_webhook(&body, Some(&signature)).await;

    assert_error(&resp, StatusCode::BAD_REQUEST, "webhooks_disabled");
    assert_eq!(stored_events(&app).await, 0);
}

#[tokio::test]
async fn hostile_but_signed_or_unsignable_inputs_are_400_on_every_retry_and_store_nothing() {
    let (server, _) = stripe_fake().await;
    let app = stripe_payments_app(&server).await;
    let shop = shop(&app, 1_000, 5).await;
    let order_id = order(&app, &shop, 1).await;
    let intent = intent_of(&app, &order_id).await;
    let mut event = intent_event(
        &event_id(),
        "payment_intent.succeeded",
        &intent,
        "succeeded",
    );
    event["data"]["object"]["description"] = json!("nul \u{0} inside");
    let body = serde_json::to_vec(&event).unwrap();
    let signed = stripe_signature(TEST_WEBHOOK_SECRET, now(), &body);

    // The same delivery twice, as Stripe retries: the same 400 both times.
    for _ in 0..2 {
        let resp = app.post_stripe_webhook(&body, Some(&signed)).await;
        assert_error(&resp, StatusCode::BAD_REQUEST, "invalid_payload");
    }
    // Timestamps at the ends of the range: stale, never an overflow.
    for t in [i64::MIN, i64::MAX] {
        let header = stripe_signature(TEST_WEBHOOK_SECRET, t, &body);
        let resp = app.post_stripe_webhook(&body, Some(&header)).await;
        assert_error(&resp, StatusCode::BAD_REQUEST, "invalid_signature");
    }
    let resp = app
        .post_stripe_webhook(&body, Some("t=-9223372036854775808,v1=00"))
        .await;
    assert_error(&resp, StatusCode::BAD_REQUEST, "invalid_signature");

    assert_eq!(stored_events(&app).await, 0);
    assert_eq!(status_of(&app, &order_id).await.0, "pending_payment");
}
