//! The Stripe client against a local fake that answers like Stripe's API (`wiremock`), and the
//! development payment mode.
//!
//! The fake's bodies carry every field async-stripe's miniserde parser requires (it rejects an
//! object that lacks a non-`Option` field), shaped like real Stripe answers, so a passing test
//! also shows the SDK can read what Stripe sends.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use shared::payments::{IntentStatus, PaymentError, Payments, StripeConfig};
use uuid::Uuid;
use wiremock::{
    Mock, MockServer, Request, ResponseTemplate,
    matchers::{method, path},
};

const SECRET_KEY: &str = "sk_test_51FakeKeyForTestsOnly0000000000000000";
const INTENT_ID: &str = "pi_3QxR2bLkdIwHu7ix0abcDEFg";

/// A Stripe client pointed at the fake with a short timeout, so slow-answer tests stay fast.
fn stripe(server: &MockServer) -> Payments {
    let config = StripeConfig::new(SECRET_KEY)
        .api_base(&server.uri())
        .timeout(Duration::from_millis(300));
    Payments::stripe(config).expect("client builds")
}

/// A PaymentIntent the way Stripe serialises it (API reference example, trimmed of nothing the
/// parser needs).
fn intent_json(id: &str, status: &str, amount: i64, order_id: Uuid) -> Value {
    let succeeded = status == "succeeded";
    json!({
        "id": id,
        "object": "payment_intent",
        "amount": amount,
        "amount_capturable": 0,
        "amount_details": { "tip": {} },
        "amount_received": if succeeded { amount } else { 0 },
        "application": null,
        "application_fee_amount": null,
        "automatic_payment_methods": { "allow_redirects": "always", "enabled": true },
        "canceled_at": if status == "canceled" { json!(1_764_000_300) } else { Value::Null },
        "cancellation_reason": if status == "canceled" { json!("requested_by_customer") } else { Value::Null },
        "capture_method": "automatic_async",
        "client_secret": format!("{id}_secret_YrKJUKribcBjcG8HVhfZluoGH"),
        "confirmation_method": "automatic",
        "created": 1_764_000_000,
        "currency": "usd",
        "customer": null,
        "description": null,
        "excluded_payment_method_types": null,
        "last_payment_error": null,
        "latest_charge": if succeeded { json!("ch_3QxR2bLkdIwHu7ix0xyz1234") } else { Value::Null },
        "livemode": false,
        "metadata": { "order_id": order_id.to_string() },
        "next_action": null,
        "on_behalf_of": null,
        "payment_method": if succeeded { json!("pm_1QxR2aLkdIwHu7ixAbCdEfGh") } else { Value::Null },
        "payment_method_configuration_details": { "id": "pmc_1QxR1zLkdIwHu7ixQwErTyUi", "parent": null },
        "payment_method_options": {
            "card": {
                "installments": null,
                "mandate_options": null,
                "network": null,
                "request_three_d_secure": "automatic"
            },
            "link": { "persistent_token": null }
        },
        "payment_method_types": ["card", "link"],
        "processing": null,
        "receipt_email": null,
        "review": null,
        "setup_future_usage": null,
        "shipping": null,
        "source": null,
        "statement_descriptor": null,
        "statement_descriptor_suffix": null,
        "status": status,
        "transfer_data": null,
        "transfer_group": null
    })
}

/// A Stripe error answer: `{"error": {...}}` with the given status.
fn stripe_error(status: u16, error: Value) -> ResponseTemplate {
    ResponseTemplate::new(status)
        .insert_header("request-id", "req_7Y3bT1iUq0fXyZ")
        .set_body_json(json!({ "error": error }))
}

/// Decodes an `application/x-www-form-urlencoded` body into (key, value) pairs.
fn form(request: &Request) -> Vec<(String, String)> {
    fn decode(text: &str) -> String {
        let bytes = text.as_bytes();
        let mut out = Vec::with_capacity(bytes.len());
        let mut i = 0;
        while i < bytes.len() {
            match bytes[i] {
                b'+' => out.push(b' '),
                b'%' if i + 2 < bytes.len() => {
                    let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).expect("ascii");
                    out.push(u8::from_str_radix(hex, 16).expect("percent escape"));
                    i += 2;
                }
                byte => out.push(byte),
            }
            i += 1;
        }
        String::from_utf8(out).expect("utf-8 form value")
    }
    let body = std::str::from_utf8(&request.body).expect("utf-8 body");
    body.split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (decode(key), decode(value))
        })
        .collect()
}

fn field<'a>(fields: &'a [(String, String)], key: &str) -> Option<&'a str> {
    fields
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

fn header<'a>(request: &'a Request, name: &str) -> Option<&'a str> {
    request.headers.get(name).and_then(|v| v.to_str().ok())
}

async fn received(server: &MockServer) -> Vec<Request> {
    server
        .received_requests()
        .await
        .expect("request recording is on")
}

#[tokio::test]
async fn create_sends_amount_currency_metadata_and_idempotency_key() {
    let server = MockServer::start().await;
    let order_id = Uuid::now_v7();
    Mock::given(method("POST"))
        .and(path("/v1/payment_intents"))
        .respond_with(ResponseTemplate::new(200).set_body_json(intent_json(
            INTENT_ID,
            "requires_payment_method",
            2599,
            order_id,
        )))
        .expect(1)
        .mount(&server)
        .await;

    let key = format!("order-{order_id}-pi");
    let intent = stripe(&server)
        .create_intent(order_id, 2599, "USD", &key)
        .await
        .expect("created");

    assert_eq!(intent.id, INTENT_ID);
    assert_eq!(
        intent.client_secret.as_deref(),
        Some("pi_3QxR2bLkdIwHu7ix0abcDEFg_secret_YrKJUKribcBjcG8HVhfZluoGH")
    );
    assert_eq!(intent.status, IntentStatus::RequiresPaymentMethod);
    assert_eq!(intent.amount_cents, 2599);
    assert_eq!(intent.currency, "usd");

    let requests = received(&server).await;
    let request = &requests[0];
    assert_eq!(header(request, "idempotency-key"), Some(key.as_str()));
    assert_eq!(
        header(request, "authorization"),
        Some(format!("Bearer {SECRET_KEY}").as_str())
    );
    assert_eq!(
        header(request, "content-type"),
        Some("application/x-www-form-urlencoded")
    );
    assert!(
        header(request, "stripe-version").is_some(),
        "the SDK pins the API version"
    );
    let fields = form(request);
    assert_eq!(field(&fields, "amount"), Some("2599"));
    assert_eq!(field(&fields, "currency"), Some("usd"), "sent lowercase");
    assert_eq!(
        field(&fields, "metadata[order_id]"),
        Some(order_id.to_string().as_str())
    );
    assert_eq!(
        field(&fields, "automatic_payment_methods[enabled]"),
        Some("true")
    );
}

#[tokio::test]
async fn repeated_create_sends_the_same_idempotency_key() {
    let server = MockServer::start().await;
    let order_id = Uuid::now_v7();
    // Stripe replays the first answer for a repeated key; the fake does the same.
    Mock::given(method("POST"))
        .and(path("/v1/payment_intents"))
        .respond_with(ResponseTemplate::new(200).set_body_json(intent_json(
            INTENT_ID,
            "requires_payment_method",
            1000,
            order_id,
        )))
        .expect(2)
        .mount(&server)
        .await;

    let payments = stripe(&server);
    let key = format!("order-{order_id}-pi");
    let first = payments
        .create_intent(order_id, 1000, "usd", &key)
        .await
        .expect("first");
    let second = payments
        .create_intent(order_id, 1000, "usd", &key)
        .await
        .expect("second");
    assert_eq!(first, second);

    let keys: Vec<_> = received(&server)
        .await
        .iter()
        .map(|r| header(r, "idempotency-key").map(str::to_owned))
        .collect();
    assert_eq!(keys, vec![Some(key.clone()), Some(key)]);
}

#[tokio::test]
async fn base_url_with_a_path_prefix_keeps_the_prefix() {
    let server = MockServer::start().await;
    let order_id = Uuid::now_v7();
    Mock::given(method("POST"))
        .and(path("/stripe/v1/payment_intents"))
        .respond_with(ResponseTemplate::new(200).set_body_json(intent_json(
            INTENT_ID,
            "requires_payment_method",
            500,
            order_id,
        )))
        .expect(1)
        .mount(&server)
        .await;

    // No trailing slash on purpose: async-stripe appends "v1/..." to the base verbatim.
    let base = format!("{}/stripe", server.uri());
    let payments = Payments::new(Some(SECRET_KEY), Some(&base)).expect("client builds");
    assert!(!payments.is_dev());
    payments
        .create_intent(order_id, 500, "usd", "order-x-pi")
        .await
        .expect("created under the prefix");
}

#[tokio::test]
async fn transient_answers_are_retryable() {
    let cases = [
        (
            500,
            json!({ "type": "api_error", "message": "An unknown error occurred" }),
        ),
        (
            503,
            json!({ "type": "api_error", "message": "Service unavailable" }),
        ),
        (
            429,
            json!({
                "type": "invalid_request_error",
                "code": "rate_limit",
                "message": "Request rate limit exceeded."
            }),
        ),
        (
            429,
            json!({
                "type": "invalid_request_error",
                "code": "lock_timeout",
                "message": "This object cannot be accessed right now because another API request or Stripe process is currently accessing it."
            }),
        ),
        (
            409,
            json!({
                "type": "idempotency_error",
                "code": "idempotency_key_in_use",
                "message": "There is currently another in-progress request using this Idempotent Key."
            }),
        ),
    ];
    for (status, error) in cases {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/v1/payment_intents"))
            .respond_with(stripe_error(status, error.clone()))
            .expect(1) // one attempt per call: the job system owns retries
            .mount(&server)
            .await;
        let err = stripe(&server)
            .create_intent(Uuid::now_v7(), 1000, "usd", "order-1-pi")
            .await
            .expect_err("must fail");
        assert!(
            err.is_retryable(),
            "{status} {error} should be retryable, got {err:?}"
        );
        assert!(
            err.to_string().contains(&status.to_string()),
            "message names the status: {err}"
        );
    }
}

#[tokio::test]
async fn error_status_with_a_non_stripe_body_is_retryable() {
    // A proxy in front of Stripe answering with HTML; async-stripe loses the status here.
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(502).set_body_raw("<html>Bad Gateway</html>", "text/html"),
        )
        .mount(&server)
        .await;
    let err = stripe(&server)
        .create_intent(Uuid::now_v7(), 1000, "usd", "order-1-pi")
        .await
        .expect_err("must fail");
    assert!(err.is_retryable(), "{err:?}");
}

#[tokio::test]
async fn client_errors_are_permanent_with_stripe_code() {
    let cases = [
        (
            400,
            json!({
                "type": "invalid_request_error",
                "code": "amount_too_small",
                "param": "amount",
                "message": "Amount must be at least $0.50 usd",
                "doc_url": "https://stripe.com/docs/error-codes/amount-too-small",
                "request_log_url": "https://dashboard.stripe.com/test/logs/req_7Y3bT1iUq0fXyZ?t=1764000000"
            }),
            Some("amount_too_small"),
        ),
        (
            402,
            json!({
                "type": "card_error",
                "code": "card_declined",
                "decline_code": "insufficient_funds",
                "charge": "ch_3QxR2bLkdIwHu7ix0xyz1234",
                "message": "Your card has insufficient funds.",
                "doc_url": "https://stripe.com/docs/error-codes/card-declined"
            }),
            Some("card_declined"),
        ),
        (
            400,
            json!({
                "type": "idempotency_error",
                "message": "Keys for idempotent requests can only be used with the same parameters they were first used with."
            }),
            None,
        ),
    ];
    for (status, error, code) in cases {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/v1/payment_intents"))
            .respond_with(stripe_error(status, error.clone()))
            .expect(1)
            .mount(&server)
            .await;
        let err = stripe(&server)
            .create_intent(Uuid::now_v7(), 10, "usd", "order-1-pi")
            .await
            .expect_err("must fail");
        assert!(!err.is_retryable(), "{status} {error} is permanent");
        assert_eq!(err.code(), code);
        let message = error["message"].as_str().expect("message");
        assert!(err.to_string().contains(message), "message says why: {err}");
        if code == Some("card_declined") {
            assert!(err.to_string().contains("insufficient_funds"), "{err}");
        }
    }
}

#[tokio::test]
async fn error_messages_never_contain_the_secret_key() {
    let server = MockServer::start().await;
    // Stripe masks the key in this message; the fake echoes it whole to prove we scrub it.
    Mock::given(method("GET"))
        .respond_with(stripe_error(
            401,
            json!({
                "type": "invalid_request_error",
                "message": format!("Invalid API Key provided: {SECRET_KEY}")
            }),
        ))
        .mount(&server)
        .await;
    let payments = stripe(&server);
    let err = payments
        .retrieve_intent(INTENT_ID)
        .await
        .expect_err("must fail");
    assert!(!err.is_retryable());
    let shown = format!("{err} {err:?} {payments:?}");
    assert!(!shown.contains(SECRET_KEY), "{shown}");
    assert!(shown.contains("Invalid API Key provided"), "{shown}");
}

#[tokio::test]
async fn success_body_the_sdk_cannot_parse_is_permanent() {
    // miniserde refuses an object without a required field (here `capture_method`); repeating
    // the call cannot fix that, so it must not be retried.
    let server = MockServer::start().await;
    let mut body = intent_json(INTENT_ID, "succeeded", 1000, Uuid::now_v7());
    body.as_object_mut()
        .expect("object")
        .remove("capture_method");
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_body_json(body))
        .mount(&server)
        .await;
    let err = stripe(&server)
        .retrieve_intent(INTENT_ID)
        .await
        .expect_err("unparseable");
    assert!(!err.is_retryable(), "{err:?}");
}

#[tokio::test]
async fn slow_answer_times_out_as_retryable() {
    let server = MockServer::start().await;
    let order_id = Uuid::now_v7();
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(intent_json(
                    INTENT_ID,
                    "requires_payment_method",
                    1000,
                    order_id,
                ))
                .set_delay(Duration::from_secs(3)),
        )
        .mount(&server)
        .await;
    let started = Instant::now();
    let err = stripe(&server)
        .create_intent(order_id, 1000, "usd", "order-1-pi")
        .await
        .expect_err("must time out");
    assert!(err.is_retryable(), "{err:?}");
    assert!(err.to_string().contains("300 ms"), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "the 300 ms timeout applies, took {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn unreachable_stripe_is_retryable() {
    // A port nothing listens on: bind, read the port, close.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("free port")
        .port();
    let config = StripeConfig::new(SECRET_KEY).api_base(&format!("http://127.0.0.1:{port}"));
    let err = Payments::stripe(config)
        .expect("client builds")
        .retrieve_intent(INTENT_ID)
        .await
        .expect_err("nothing listens");
    assert!(err.is_retryable(), "{err:?}");
}

#[tokio::test]
async fn retrieve_parses_a_succeeded_intent() {
    let server = MockServer::start().await;
    let order_id = Uuid::now_v7();
    Mock::given(method("GET"))
        .and(path(format!("/v1/payment_intents/{INTENT_ID}")))
        .respond_with(ResponseTemplate::new(200).set_body_json(intent_json(
            INTENT_ID,
            "succeeded",
            4200,
            order_id,
        )))
        .expect(1)
        .mount(&server)
        .await;
    let intent = stripe(&server)
        .retrieve_intent(INTENT_ID)
        .await
        .expect("retrieved");
    assert_eq!(intent.status, IntentStatus::Succeeded);
    assert_eq!(intent.amount_cents, 4200);
    assert_eq!(intent.currency, "usd");
    assert!(
        !format!("{intent:?}").contains("_secret_"),
        "Debug hides the client secret"
    );
}

#[tokio::test]
async fn ids_that_are_not_intent_ids_are_refused_before_sending() {
    let server = MockServer::start().await;
    let payments = stripe(&server);
    for bad in ["", "pi_x/../../v1/refunds", "ch_123", "pi_a b"] {
        let err = payments.retrieve_intent(bad).await.expect_err("refused");
        assert!(!err.is_retryable(), "{bad:?}");
        let err = payments.refund(bad, None, "k").await.expect_err("refused");
        assert!(!err.is_retryable(), "{bad:?}");
    }
    assert!(received(&server).await.is_empty());
}

#[tokio::test]
async fn cancel_sends_the_key_and_returns_canceled() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(format!("/v1/payment_intents/{INTENT_ID}/cancel")))
        .respond_with(ResponseTemplate::new(200).set_body_json(intent_json(
            INTENT_ID,
            "canceled",
            1000,
            Uuid::now_v7(),
        )))
        .expect(1)
        .mount(&server)
        .await;
    let intent = stripe(&server)
        .cancel_intent(INTENT_ID, "order-1-cancel")
        .await
        .expect("canceled");
    assert_eq!(intent.status, IntentStatus::Canceled);
    let requests = received(&server).await;
    assert_eq!(
        header(&requests[0], "idempotency-key"),
        Some("order-1-cancel")
    );
}

/// Stripe's answer to cancelling an intent in a state that cannot be cancelled.
fn unexpected_state(intent: Option<Value>, status: &str) -> ResponseTemplate {
    let mut error = json!({
        "type": "invalid_request_error",
        "code": "payment_intent_unexpected_state",
        "doc_url": "https://stripe.com/docs/error-codes/payment-intent-unexpected-state",
        "message": format!("You cannot cancel this PaymentIntent because it has a status of {status}. Only a PaymentIntent with one of the following statuses may be canceled: requires_payment_method, requires_capture, requires_confirmation, requires_action, processing."),
        "request_log_url": "https://dashboard.stripe.com/test/logs/req_7Y3bT1iUq0fXyZ?t=1764000000"
    });
    if let Some(intent) = intent {
        error["payment_intent"] = intent;
    }
    stripe_error(400, error)
}

#[tokio::test]
async fn cancel_of_a_succeeded_intent_is_ok_with_status_succeeded() {
    let server = MockServer::start().await;
    let order_id = Uuid::now_v7();
    Mock::given(method("POST"))
        .and(path(format!("/v1/payment_intents/{INTENT_ID}/cancel")))
        .respond_with(unexpected_state(
            Some(intent_json(INTENT_ID, "succeeded", 1000, order_id)),
            "succeeded",
        ))
        .expect(1)
        .mount(&server)
        .await;
    // The embedded intent is final, so no second round trip.
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(500))
        .expect(0)
        .mount(&server)
        .await;
    let intent = stripe(&server)
        .cancel_intent(INTENT_ID, "order-1-cancel")
        .await
        .expect("treated as success");
    assert_eq!(intent.status, IntentStatus::Succeeded);
    assert_eq!(intent.id, INTENT_ID);
}

#[tokio::test]
async fn cancel_refusal_without_an_embedded_intent_retrieves_the_state() {
    for (status, expected) in [
        ("succeeded", IntentStatus::Succeeded),
        ("canceled", IntentStatus::Canceled),
    ] {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path(format!("/v1/payment_intents/{INTENT_ID}/cancel")))
            .respond_with(unexpected_state(None, status))
            .expect(1)
            .mount(&server)
            .await;
        Mock::given(method("GET"))
            .and(path(format!("/v1/payment_intents/{INTENT_ID}")))
            .respond_with(ResponseTemplate::new(200).set_body_json(intent_json(
                INTENT_ID,
                status,
                1000,
                Uuid::now_v7(),
            )))
            .expect(1)
            .mount(&server)
            .await;
        let intent = stripe(&server)
            .cancel_intent(INTENT_ID, "order-1-cancel")
            .await
            .expect("idempotent");
        assert_eq!(intent.status, expected);
    }
}

#[tokio::test]
async fn cancel_of_a_processing_intent_is_retryable() {
    let server = MockServer::start().await;
    let order_id = Uuid::now_v7();
    Mock::given(method("POST"))
        .respond_with(unexpected_state(
            Some(intent_json(INTENT_ID, "processing", 1000, order_id)),
            "processing",
        ))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_body_json(intent_json(
            INTENT_ID,
            "processing",
            1000,
            order_id,
        )))
        .expect(1)
        .mount(&server)
        .await;
    let err = stripe(&server)
        .cancel_intent(INTENT_ID, "order-1-cancel")
        .await
        .expect_err("cannot cancel yet");
    assert!(err.is_retryable(), "{err:?}");
}

#[tokio::test]
async fn stale_replayed_refusal_cancels_again_without_the_key() {
    // The first cancel under this key hit a processing intent; Stripe keeps replaying that 400
    // for the key although the payment has since failed and the intent is cancelable.
    let server = MockServer::start().await;
    let order_id = Uuid::now_v7();
    Mock::given(method("POST"))
        .and(path(format!("/v1/payment_intents/{INTENT_ID}/cancel")))
        .and(|request: &Request| request.headers.contains_key("idempotency-key"))
        .respond_with(unexpected_state(
            Some(intent_json(INTENT_ID, "processing", 1000, order_id)),
            "processing",
        ))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(format!("/v1/payment_intents/{INTENT_ID}/cancel")))
        .and(|request: &Request| !request.headers.contains_key("idempotency-key"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(intent_json(INTENT_ID, "canceled", 1000, order_id)),
        )
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_body_json(intent_json(
            INTENT_ID,
            "requires_payment_method",
            1000,
            order_id,
        )))
        .expect(1)
        .mount(&server)
        .await;
    let intent = stripe(&server)
        .cancel_intent(INTENT_ID, "order-1-cancel")
        .await
        .expect("canceled on the second request");
    assert_eq!(intent.status, IntentStatus::Canceled);
}

fn refund_json(intent_id: &str) -> Value {
    json!({
        "id": "re_3QxR2bLkdIwHu7ix1RfNdAbC",
        "object": "refund",
        "amount": 1000,
        "balance_transaction": "txn_3QxR2bLkdIwHu7ix1BtXn123",
        "charge": "ch_3QxR2bLkdIwHu7ix0xyz1234",
        "created": 1_764_000_500,
        "currency": "usd",
        "destination_details": {
            "card": {
                "reference_status": "pending",
                "reference_type": "acquirer_reference_number",
                "type": "refund"
            },
            "type": "card"
        },
        "metadata": {},
        "payment_intent": intent_id,
        "reason": null,
        "receipt_number": null,
        "source_transfer_reversal": null,
        "status": "succeeded",
        "transfer_reversal": null
    })
}

#[tokio::test]
async fn refund_sends_the_intent_and_the_key() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/refunds"))
        .respond_with(ResponseTemplate::new(200).set_body_json(refund_json(INTENT_ID)))
        .expect(1)
        .mount(&server)
        .await;
    let refund = stripe(&server)
        .refund(INTENT_ID, None, "order-1-refund")
        .await
        .expect("refunded");
    assert_eq!(refund.id, "re_3QxR2bLkdIwHu7ix1RfNdAbC");

    let requests = received(&server).await;
    let request = &requests[0];
    assert_eq!(header(request, "idempotency-key"), Some("order-1-refund"));
    let fields = form(request);
    assert_eq!(field(&fields, "payment_intent"), Some(INTENT_ID));
    assert_eq!(
        field(&fields, "amount"),
        None,
        "a full refund sends no amount"
    );
}

#[tokio::test]
async fn refund_of_a_refunded_intent_is_permanent_with_its_code() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/refunds"))
        .respond_with(stripe_error(
            400,
            json!({
                "type": "invalid_request_error",
                "code": "charge_already_refunded",
                "message": "Charge ch_3QxR2bLkdIwHu7ix0xyz1234 has already been refunded."
            }),
        ))
        .mount(&server)
        .await;
    let err = stripe(&server)
        .refund(INTENT_ID, None, "order-1-refund-2")
        .await
        .expect_err("already refunded");
    assert_eq!(err.code(), Some("charge_already_refunded"));
    assert!(matches!(err, PaymentError::Permanent { .. }));
}

#[tokio::test]
async fn dev_mode_is_deterministic_and_local() {
    // A base URL is ignored without a key; nothing listens on port 9 anyway.
    let payments = Payments::new(None, Some("http://127.0.0.1:9")).expect("dev");
    assert!(payments.is_dev());
    let order_id = Uuid::now_v7();
    let key = format!("order-{order_id}-pi");

    let first = payments
        .create_intent(order_id, 2599, "USD", &key)
        .await
        .expect("dev create");
    let second = payments
        .create_intent(order_id, 2599, "usd", &key)
        .await
        .expect("dev create again");
    assert_eq!(first, second);
    let expected_id = format!("pi_dev_{}", order_id.simple());
    assert_eq!(first.id, expected_id);
    let secret = first.client_secret.clone().expect("secret");
    let suffix = secret
        .strip_prefix(&format!("{expected_id}_secret_"))
        .expect("secret format");
    assert!(
        suffix.len() >= 16 && suffix.bytes().all(|b| b.is_ascii_hexdigit()),
        "{secret}"
    );
    assert_eq!(first.status, IntentStatus::RequiresPaymentMethod);
    assert_eq!((first.amount_cents, first.currency.as_str()), (2599, "usd"));

    let other = payments
        .create_intent(Uuid::now_v7(), 2599, "usd", "order-other-pi")
        .await
        .expect("dev create");
    assert_ne!(other.client_secret, first.client_secret);

    let retrieved = payments
        .retrieve_intent(&first.id)
        .await
        .expect("dev retrieve");
    assert_eq!(retrieved.status, IntentStatus::RequiresPaymentMethod);
    assert_eq!(retrieved.client_secret, first.client_secret);
    let canceled = payments
        .cancel_intent(&first.id, "order-x-cancel")
        .await
        .expect("dev cancel");
    assert_eq!(canceled.status, IntentStatus::Canceled);
    let refund = payments
        .refund(&first.id, None, "order-x-refund")
        .await
        .expect("dev refund");
    assert!(
        refund
            .id
            .starts_with(&format!("re_dev_{}_", order_id.simple())),
        "{}",
        refund.id
    );
    let again = payments.refund(&first.id, None, "order-x-refund").await;
    assert_eq!(
        again.expect("dev refund").id,
        refund.id,
        "same key, same refund"
    );
    let other = payments
        .refund(&first.id, Some(5), "order-x-refund-2")
        .await;
    assert_ne!(other.expect("dev refund").id, refund.id);

    // A real intent id in dev mode means a misconfiguration, not a placeholder.
    let err = payments
        .retrieve_intent(INTENT_ID)
        .await
        .expect_err("not dev");
    assert!(!err.is_retryable());
}

#[tokio::test]
async fn invalid_input_is_refused_in_both_modes() {
    let server = MockServer::start().await;
    for payments in [Payments::Dev, stripe(&server)] {
        let order_id = Uuid::now_v7();
        for (amount, currency, key) in [
            (0, "usd", "k"),
            (-5, "usd", "k"),
            (100, "dollars", "k"),
            (100, "usd", ""),
        ] {
            let err = payments
                .create_intent(order_id, amount, currency, key)
                .await
                .expect_err("refused");
            assert!(!err.is_retryable(), "{amount} {currency} {key:?}");
        }
        let long_key = "k".repeat(256);
        assert!(
            payments
                .create_intent(order_id, 100, "usd", &long_key)
                .await
                .is_err()
        );
    }
    assert!(received(&server).await.is_empty());
}

#[test]
fn configuration_errors_are_reported() {
    // Idempotent: `main` calls it, and so does every client construction.
    shared::payments::install_crypto_provider();
    shared::payments::install_crypto_provider();
    let blank = Payments::new(Some("  "), None).expect_err("blank key");
    assert!(!blank.is_retryable());
    assert!(blank.to_string().contains("STRIPE_SECRET_KEY"), "{blank}");
    let bad_base = Payments::new(Some(SECRET_KEY), Some("api.stripe.com")).expect_err("no scheme");
    assert!(!bad_base.to_string().contains(SECRET_KEY));
    let default = Payments::new(Some(SECRET_KEY), None).expect("defaults");
    assert!(format!("{default:?}").contains("https://api.stripe.com/"));
    assert!(!format!("{default:?}").contains(SECRET_KEY));
}

#[test]
fn status_names_round_trip() {
    for status in [
        IntentStatus::RequiresPaymentMethod,
        IntentStatus::RequiresConfirmation,
        IntentStatus::RequiresAction,
        IntentStatus::Processing,
        IntentStatus::RequiresCapture,
        IntentStatus::Canceled,
        IntentStatus::Succeeded,
    ] {
        assert_eq!(IntentStatus::parse(status.as_str()), Some(status));
        assert_eq!(status.to_string(), status.as_str());
    }
    assert_eq!(IntentStatus::parse("requires_source"), None);
}

#[test]
fn calls_can_run_in_spawned_tasks() {
    // apalis handlers and `tokio::spawn` need `Send` futures and a shareable client.
    fn send<T: Send>(_: &T) {}
    fn shareable<T: Send + Sync + Clone + 'static>() {}
    shareable::<Payments>();
    let payments = Payments::Dev;
    send(&payments.create_intent(Uuid::nil(), 1, "usd", "k"));
    send(&payments.retrieve_intent(INTENT_ID));
    send(&payments.cancel_intent(INTENT_ID, "k"));
    send(&payments.refund(INTENT_ID, None, "k"));
}
