//! The PaymentIntent step after the order commit: an order cancelled while it is retried, an
//! outage, a permanent refusal.

use poem::http::StatusCode;
use serde_json::{Value, json};
use shared::checkout::{self, ProcessError, ProcessOutcome};
use wiremock::{
    Mock, MockServer,
    matchers::{method, path},
};

use test_support::stripe::{
    CreateIntent, client_secret, header, intent_id_for, requests_to, stripe_app, stripe_error,
};

use super::{accepted_job, job_row, listing, order_of_job, orders};

// ---------------------------------------------------------------------------------------------
// 5. A crash (or outage) between the order commit and the PaymentIntent.

#[tokio::test]
async fn an_order_cancelled_while_payment_setup_is_retried_gets_no_payment_intent() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/payment_intents"))
        .respond_with(stripe_error(
            500,
            json!({ "type": "api_error", "message": "An unknown error occurred" }),
        ))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1/payment_intents"))
        .respond_with(CreateIntent::at_once())
        .with_priority(2)
        .mount(&server)
        .await;
    let app = stripe_app(&server).await;
    let (_, seller) = app.signed_up("seller").await;
    let l = listing(&app.create_listing(&seller, "Teapot", 2_000, 4).await);
    let (_, buyer, address) = app.buyer("buyer").await;
    app.add_to_cart(&buyer, &l, 1).await;
    let job_id = accepted_job(&app.checkout(&buyer, &address, "k").await);
    let deps = app.checkout_deps();
    let first = checkout::process(&deps, job_id).await;
    assert!(
        matches!(first, Err(ProcessError::PaymentUnavailable(_))),
        "{first:?}"
    );
    let order = order_of_job(&app, job_id).await.expect("order committed");

    // The buyer gives up while the payment step waits for its retry.
    let cancelled = app
        .post(
            &format!("/api/v1/orders/{}/cancel", order.id),
            Some(&buyer),
            json!({}),
        )
        .await;
    assert_eq!(cancelled.status, StatusCode::OK, "{:?}", cancelled.body);
    let second = checkout::process(&deps, job_id).await.expect("second run");

    assert_eq!(
        second,
        ProcessOutcome::Failed {
            code: "order_closed".into()
        }
    );
    let job = job_row(&app, job_id).await;
    assert_eq!(job.status.as_str(), "failed");
    assert_eq!(job.error_code.as_deref(), Some("order_closed"));
    let order = order_of_job(&app, job_id).await.expect("order kept");
    assert_eq!(order.status.as_str(), "cancelled");
    assert_eq!(
        order.payment_intent_id, None,
        "no intent for a closed order"
    );
    let creates = requests_to(&server, "POST", "/v1/payment_intents").await;
    assert_eq!(creates.len(), 1, "only the failed attempt reached Stripe");
    assert_eq!(app.stock(&l).await, (4, 0));
    assert_eq!(app.gate_counter(&l).await, Some(4));
    app.assert_stock_invariant().await;
}

#[tokio::test]
async fn a_payment_outage_after_the_order_commit_is_retried_into_one_order() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/payment_intents"))
        .respond_with(stripe_error(
            500,
            json!({ "type": "api_error", "message": "An unknown error occurred" }),
        ))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1/payment_intents"))
        .respond_with(CreateIntent::at_once())
        .with_priority(2)
        .mount(&server)
        .await;
    let app = stripe_app(&server).await;
    let (_, seller) = app.signed_up("seller").await;
    let l = listing(&app.create_listing(&seller, "Kettle", 3_100, 5).await);
    let (_, buyer, address) = app.buyer("buyer").await;
    app.add_to_cart(&buyer, &l, 2).await;
    let job_id = accepted_job(&app.checkout(&buyer, &address, "k").await);
    let deps = app.checkout_deps();

    let first = checkout::process(&deps, job_id).await;
    assert!(
        matches!(first, Err(ProcessError::PaymentUnavailable(_))),
        "{first:?}"
    );
    let job = job_row(&app, job_id).await;
    assert_eq!(
        job.status.as_str(),
        "queued",
        "back in the queue for a retry"
    );
    assert_eq!(job.error_code.as_deref(), Some("payment_unavailable"));
    assert_eq!(job.attempts, 1);
    let order = order_of_job(&app, job_id).await.expect("order committed");
    assert_eq!(order.status.as_str(), "pending_payment");
    assert_eq!(order.payment_intent_id, None);
    assert_eq!(app.stock(&l).await, (5, 2));
    let status = app
        .get(&format!("/api/v1/jobs/{job_id}"), Some(&buyer))
        .await;
    assert_eq!(status.body["status"], "queued");
    assert_eq!(
        status.body["error"],
        Value::Null,
        "a retrying job shows no error"
    );

    let second = checkout::process(&deps, job_id).await.expect("second run");

    assert_eq!(second, ProcessOutcome::Succeeded { order_id: order.id });
    assert_eq!(orders(&app).await, 1);
    let creates = requests_to(&server, "POST", "/v1/payment_intents").await;
    assert_eq!(creates.len(), 2);
    let key = format!("order-{}-pi", order.id);
    for request in &creates {
        assert_eq!(header(request, "idempotency-key"), Some(key.as_str()));
    }
    let intent_id = intent_id_for(&order.id.to_string());
    let job = job_row(&app, job_id).await;
    assert_eq!(job.status.as_str(), "succeeded");
    assert_eq!(job.attempts, 2);
    assert_eq!(
        job.result,
        Some(json!({ "order_id": order.id, "client_secret": client_secret(&intent_id) }))
    );
    let order = order_of_job(&app, job_id).await.unwrap();
    assert_eq!(order.payment_intent_id.as_deref(), Some(intent_id.as_str()));
    assert_eq!(app.stock(&l).await, (5, 2), "reserved once");
    assert_eq!(app.gate_counter(&l).await, Some(3));
    app.assert_stock_invariant().await;
}

// ---------------------------------------------------------------------------------------------
// 7. A permanent payment refusal.

#[tokio::test]
async fn a_permanent_payment_refusal_cancels_the_order_and_releases_the_stock() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/payment_intents"))
        .respond_with(stripe_error(
            400,
            json!({
                "type": "invalid_request_error",
                "code": "amount_too_small",
                "param": "amount",
                "message": "Amount must be at least $0.50 usd",
                "doc_url": "https://stripe.com/docs/error-codes/amount-too-small"
            }),
        ))
        .mount(&server)
        .await;
    let app = stripe_app(&server).await;
    let (_, seller) = app.signed_up("seller").await;
    let l = listing(&app.create_listing(&seller, "Sticker", 10, 3).await);
    let (_, buyer, address) = app.buyer("buyer").await;
    app.add_to_cart(&buyer, &l, 2).await;
    let job_id = accepted_job(&app.checkout(&buyer, &address, "k").await);
    assert_eq!(app.gate_counter(&l).await, Some(1));

    let outcome = checkout::process(&app.checkout_deps(), job_id)
        .await
        .expect("run");

    assert_eq!(
        outcome,
        ProcessOutcome::Failed {
            code: "payment_failed".into()
        }
    );
    let job = job_row(&app, job_id).await;
    assert_eq!(job.status.as_str(), "failed");
    assert_eq!(job.error_code.as_deref(), Some("payment_failed"));
    assert!(
        job.error_message
            .as_deref()
            .is_some_and(|m| m.contains("amount_too_small")),
        "{:?}",
        job.error_message
    );
    let order = order_of_job(&app, job_id).await.expect("order");
    assert_eq!(order.status.as_str(), "cancelled");
    assert_eq!(order.status_reason.as_deref(), Some("payment_setup_failed"));
    assert_eq!(app.stock(&l).await, (3, 0));
    assert_eq!(
        app.gate_counter(&l).await,
        Some(3),
        "the gate got its units back"
    );
    let status = app
        .get(&format!("/api/v1/jobs/{job_id}"), Some(&buyer))
        .await;
    assert_eq!(status.body["status"], "failed");
    assert_eq!(status.body["error"]["code"], "payment_failed");
    assert_eq!(
        requests_to(&server, "POST", "/v1/payment_intents")
            .await
            .len(),
        1,
        "a permanent refusal is not retried"
    );
    app.assert_stock_invariant().await;
}
