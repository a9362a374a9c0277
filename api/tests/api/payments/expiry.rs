//! The `expire_orders` job, late payments and the races between them.

use std::sync::Arc;

use poem::http::StatusCode;
use serde_json::json;
use shared::{
    orders::expire::ExpiryReport,
    payment_events::{EventOutcome, Settlement},
};
use test_support::{
    TestApp,
    stripe::{header, stripe_error},
};
use uuid::Uuid;

use super::{
    Endpoint, balances, calls, event_id, intent_event, intent_of, ledger_of, line_statuses,
    make_overdue, order, shop, status_of, stripe_fake, stripe_payments_app,
};

#[tokio::test]
async fn overdue_orders_are_cancelled_at_stripe_and_release_their_stock() {
    let (server, _) = stripe_fake().await;
    let app = stripe_payments_app(&server).await;
    let shop = shop(&app, 1_000, 5).await;
    let overdue = order(&app, &shop, 2).await;
    let current = order(&app, &shop, 1).await;
    make_overdue(&app, &overdue).await;
    let gate = app.gate_counter(&shop.listing).await.expect("gate loaded");
    let intent = intent_of(&app, &overdue).await;

    let report = app.run_expiry().await;

    assert_eq!(
        report,
        ExpiryReport {
            expired: 1,
            ..ExpiryReport::default()
        }
    );
    assert_eq!(
        status_of(&app, &overdue).await,
        ("expired".into(), Some("payment_timeout".into()))
    );
    assert_eq!(line_statuses(&app, &overdue).await, ["cancelled"]);
    assert_eq!(status_of(&app, &current).await.0, "pending_payment");
    assert_eq!(app.stock(&shop.listing).await, (5, 1));
    assert_eq!(app.gate_counter(&shop.listing).await, Some(gate + 2));
    let cancels = calls(
        &server,
        "POST",
        &format!("/v1/payment_intents/{intent}/cancel"),
    )
    .await;
    assert_eq!(cancels.len(), 1);
    assert_eq!(
        header(&cancels[0], "idempotency-key"),
        Some(format!("order-{overdue}-expire").as_str())
    );
    assert_eq!(
        app.run_expiry().await,
        ExpiryReport::default(),
        "nothing left"
    );
    app.assert_stock_invariant().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_concurrent_expiry_runs_expire_each_order_once() {
    let (server, _) = stripe_fake().await;
    let app = Arc::new(stripe_payments_app(&server).await);
    let shop = shop(&app, 1_000, 20).await;
    let mut orders = Vec::new();
    for _ in 0..6 {
        let id = order(&app, &shop, 1).await;
        make_overdue(&app, &id).await;
        orders.push(id);
    }

    let (a, b) = tokio::join!(
        tokio::spawn({
            let app = Arc::clone(&app);
            async move { app.run_expiry().await }
        }),
        tokio::spawn({
            let app = Arc::clone(&app);
            async move { app.run_expiry().await }
        }),
    );
    let (a, b) = (a.unwrap(), b.unwrap());

    assert_eq!(a.expired + b.expired, 6, "{a:?} {b:?}");
    assert_eq!(a.already_settled + b.already_settled, 0, "{a:?} {b:?}");
    for id in &orders {
        assert_eq!(status_of(&app, id).await.0, "expired");
        let intent = intent_of(&app, id).await;
        let cancels = calls(
            &server,
            "POST",
            &format!("/v1/payment_intents/{intent}/cancel"),
        )
        .await;
        assert_eq!(cancels.len(), 1, "one cancel per order");
    }
    assert_eq!(app.stock(&shop.listing).await, (20, 0));
    assert_eq!(app.gate_counter(&shop.listing).await, Some(20));
    app.assert_stock_invariant().await;
}

#[tokio::test]
async fn an_order_stays_pending_while_stripe_refuses_to_cancel_its_payment() {
    let (server, intents) = stripe_fake().await;
    let app = stripe_payments_app(&server).await;
    let shop = shop(&app, 1_000, 5).await;
    let order_id = order(&app, &shop, 2).await;
    make_overdue(&app, &order_id).await;
    intents.fail(
        Endpoint::Cancel,
        stripe_error(
            401,
            json!({ "type": "invalid_request_error", "message": "Invalid API Key provided" }),
        ),
    );

    let report = app.run_expiry().await;

    assert_eq!(report.deferred, 1, "{report:?}");
    assert_eq!(status_of(&app, &order_id).await.0, "pending_payment");
    assert_eq!(app.stock(&shop.listing).await, (5, 2));
    // Claimed for this run: a second run within the lease leaves it alone.
    assert_eq!(app.run_expiry().await, ExpiryReport::default());
    app.assert_stock_invariant().await;
}

#[tokio::test]
async fn expiry_applies_a_payment_that_already_succeeded() {
    let (server, intents) = stripe_fake().await;
    let app = stripe_payments_app(&server).await;
    let shop = shop(&app, 1_000, 5).await;
    let order_id = order(&app, &shop, 2).await;
    make_overdue(&app, &order_id).await;
    // Paid in time; the webhook has not arrived yet.
    intents.set(&intent_of(&app, &order_id).await, "succeeded");

    let report = app.run_expiry().await;

    assert_eq!(report.paid, 1, "{report:?}");
    assert_eq!(status_of(&app, &order_id).await.0, "paid");
    assert_eq!(app.stock(&shop.listing).await, (3, 0));
    assert_eq!(ledger_of(&app, &order_id).await, (1_800, 2));
    assert!(calls(&server, "POST", "/v1/refunds").await.is_empty());
    app.assert_stock_invariant().await;
}

#[tokio::test]
async fn a_payment_that_succeeds_after_expiry_is_refunded_once_and_nets_to_zero() {
    let (server, intents) = stripe_fake().await;
    let app = stripe_payments_app(&server).await;
    let shop = shop(&app, 1_000, 5).await;
    let order_id = order(&app, &shop, 2).await;
    let intent = intent_of(&app, &order_id).await;
    make_overdue(&app, &order_id).await;
    // Stripe refuses the cancel for good (it does not know the intent, say): the order
    // expires anyway, because a payment that still arrives is refunded automatically.
    intents.fail(
        Endpoint::Cancel,
        stripe_error(
            404,
            json!({
                "type": "invalid_request_error",
                "code": "resource_missing",
                "message": "No such payment_intent"
            }),
        ),
    );
    app.run_expiry().await;
    intents.restore(Endpoint::Cancel);
    assert_eq!(status_of(&app, &order_id).await.0, "expired");
    // ...and then the customer's payment goes through after all.
    intents.set(&intent, "succeeded");
    let success = intent_event(
        &event_id(),
        "payment_intent.succeeded",
        &intent,
        "succeeded",
    );
    assert_eq!(app.post_signed_event(&success).await.status, StatusCode::OK);

    let outcomes = app.run_payment_event_jobs().await;

    assert_eq!(
        outcomes,
        [Some(EventOutcome::Settled {
            settlement: Settlement::LateRefunded
        })]
    );
    assert_eq!(
        status_of(&app, &order_id).await,
        ("refunded".into(), Some("late_payment_refunded".into()))
    );
    let refunds = calls(&server, "POST", "/v1/refunds").await;
    assert_eq!(refunds.len(), 1);
    assert_eq!(
        header(&refunds[0], "idempotency-key"),
        Some(format!("order-{order_id}-late-refund").as_str())
    );
    let refund_id: Option<String> =
        sqlx::query_scalar("SELECT refund_id FROM orders WHERE id = $1")
            .bind(order_id.parse::<Uuid>().unwrap())
            .fetch_one(app.pool())
            .await
            .unwrap();
    assert!(refund_id.is_some_and(|r| r.starts_with("re_")));
    // Recorded in the ledger (sale, fee, and their reversals), netting to zero.
    assert_eq!(ledger_of(&app, &order_id).await, (0, 4));
    assert_eq!(balances(&app, &shop.seller).await, [("usd".to_owned(), 0)]);
    assert_eq!(app.stock(&shop.listing).await, (5, 0), "no unit was sold");

    // Stripe delivers another success event for the same intent: nothing moves again.
    let again = intent_event(
        &event_id(),
        "payment_intent.succeeded",
        &intent,
        "succeeded",
    );
    assert_eq!(app.post_signed_event(&again).await.status, StatusCode::OK);
    app.run_payment_event_jobs().await;
    assert_eq!(calls(&server, "POST", "/v1/refunds").await.len(), 1);
    assert_eq!(ledger_of(&app, &order_id).await, (0, 4));
    app.assert_stock_invariant().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn expiry_racing_a_success_webhook_settles_each_order_exactly_once() {
    let (server, intents) = stripe_fake().await;
    let app = Arc::new(stripe_payments_app(&server).await);
    let shop = shop(&app, 1_000, 20).await;
    let mut orders = Vec::new();
    for _ in 0..5 {
        let id = order(&app, &shop, 2).await;
        make_overdue(&app, &id).await;
        let intent = intent_of(&app, &id).await;
        intents.set(&intent, "succeeded");
        let success = intent_event(
            &event_id(),
            "payment_intent.succeeded",
            &intent,
            "succeeded",
        );
        assert_eq!(app.post_signed_event(&success).await.status, StatusCode::OK);
        orders.push(id);
    }

    let expiry = tokio::spawn({
        let app = Arc::clone(&app);
        async move { app.run_expiry().await }
    });
    let events = tokio::spawn({
        let app = Arc::clone(&app);
        async move { app.run_payment_event_jobs().await }
    });
    let (report, outcomes) = (expiry.await.unwrap(), events.await.unwrap());

    let paid_by_events = outcomes
        .iter()
        .filter(|o| {
            **o == Some(EventOutcome::Settled {
                settlement: Settlement::Paid,
            })
        })
        .count();
    assert_eq!(
        report.paid as usize + paid_by_events,
        5,
        "{report:?} {outcomes:?}"
    );
    assert_eq!(report.expired, 0);
    for id in &orders {
        assert_eq!(status_of(&app, id).await.0, "paid");
        assert_eq!(ledger_of(&app, id).await, (1_800, 2));
    }
    assert!(calls(&server, "POST", "/v1/refunds").await.is_empty());
    assert_eq!(app.stock(&shop.listing).await, (10, 0));
    app.assert_stock_invariant().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn in_development_mode_expiry_racing_a_payment_ends_paid_or_refunded_never_both() {
    let app = Arc::new(TestApp::spawn_with(|s| s.max_unpaid_orders = 100).await);
    let shop = shop(&app, 1_000, 20).await;
    let mut orders = Vec::new();
    for _ in 0..5 {
        let id = order(&app, &shop, 2).await;
        let resp = app
            .post(
                &format!("/api/v1/dev/orders/{id}/payment"),
                Some(&shop.buyer),
                serde_json::json!({ "outcome": "succeeded" }),
            )
            .await;
        assert_eq!(resp.status, StatusCode::ACCEPTED, "{}", resp.body);
        make_overdue(&app, &id).await;
        orders.push(id);
    }

    let expiry = tokio::spawn({
        let app = Arc::clone(&app);
        async move { app.run_expiry().await }
    });
    let events = tokio::spawn({
        let app = Arc::clone(&app);
        async move { app.run_payment_event_jobs().await }
    });
    let (_, _) = (expiry.await.unwrap(), events.await.unwrap());

    let mut sold = 0;
    let mut credited = 0;
    for id in &orders {
        match status_of(&app, id).await {
            (status, _) if status == "paid" => {
                sold += 2;
                credited += 1_800;
                assert_eq!(ledger_of(&app, id).await, (1_800, 2));
            }
            (status, Some(reason)) if status == "refunded" => {
                assert_eq!(reason, "late_payment_refunded");
                assert_eq!(ledger_of(&app, id).await, (0, 4));
            }
            other => panic!("order {id} ended {other:?}"),
        }
    }
    assert_eq!(app.stock(&shop.listing).await, (20 - sold, 0));
    assert_eq!(
        balances(&app, &shop.seller).await,
        [("usd".to_owned(), credited)]
    );
    app.assert_stock_invariant().await;
}
