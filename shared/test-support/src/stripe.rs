//! One local fake of Stripe for every crate's tests, faked at the HTTP boundary (`wiremock`):
//! the api in-process and the worker binary talk to it through `STRIPE_API_BASE` exactly as
//! they talk to Stripe.
//!
//! - [`stripe_fake`]: a stateful fake of the endpoints payments use (create, retrieve and cancel
//!   PaymentIntents, refunds); [`Intents`] sets an intent's status or makes an endpoint fail.
//!   [`stripe_fake_with_slow_first_create`] answers the first create late, so a test can stop a
//!   worker in the middle of a checkout.
//! - JSON the way Stripe serialises it, with every field async-stripe's strict parser requires:
//!   [`intent_json`], [`known_intent_json`], [`stripe_error`].
//! - What the fake received: [`requests_to`], [`create_keys`], [`form`], [`field`], [`header`].
//! - Webhooks: [`stripe_signature`] with [`TEST_WEBHOOK_SECRET`].

use std::{
    collections::HashMap,
    sync::{Arc, LazyLock, Mutex},
    time::Duration,
};

use hmac::{Hmac, Mac};
use secrecy::SecretString;
use serde_json::{Value, json};
use sha2::Sha256;
use uuid::Uuid;
use wiremock::{
    Mock, MockServer, Request, Respond, ResponseTemplate,
    matchers::{method, path, path_regex},
};

use crate::TestApp;

// --- Webhooks ---------------------------------------------------------------------------------

/// A webhook secret for tests to configure (`STRIPE_WEBHOOK_SECRET`) and sign with.
pub const TEST_WEBHOOK_SECRET: &str = "whsec_test_5f1c0a9e4b7d2c8e6a3f0b1d";

/// A `Stripe-Signature` header exactly as Stripe builds it: `t=<timestamp>,v1=<hex
/// HMAC-SHA256(secret, "<timestamp>.<body>")>`. Written independently of the code under test,
/// so a shared mistake cannot make both sides agree.
pub fn stripe_signature(secret: &str, timestamp: i64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!(
        "t={timestamp},v1={}",
        hex::encode(mac.finalize().into_bytes())
    )
}

// --- Stripe's JSON ----------------------------------------------------------------------------

/// What a fake Stripe was asked to create, by intent id: (amount, currency, order id). Intent
/// ids are derived from order ids, which are unique, so tests running in parallel share it.
static CREATED: LazyLock<Mutex<HashMap<String, Created>>> = LazyLock::new(Mutex::default);

/// (amount, currency, order id) of a created intent.
type Created = (i64, String, String);

/// Remembers the intent a fake created, so later answers and events about it carry the same
/// amount, currency and order reference, as Stripe's would.
pub fn remember_intent(id: &str, amount: i64, currency: &str, order_id: &str) {
    CREATED.lock().unwrap().insert(
        id.to_owned(),
        (amount, currency.to_owned(), order_id.to_owned()),
    );
}

/// The intent `id` as a fake created it, in `status`; an intent no fake created gets an amount
/// of 2000 usd and the order reference `o`.
pub fn known_intent_json(id: &str, status: &str) -> Value {
    let (amount, currency, order_id) = CREATED
        .lock()
        .unwrap()
        .get(id)
        .cloned()
        .unwrap_or_else(|| (2_000, "usd".to_owned(), "o".to_owned()));
    intent_json_in(id, status, amount, &currency, &order_id)
}

/// A PaymentIntent the way Stripe serialises it, in usd.
pub fn intent_json(id: &str, status: &str, amount: i64, order_id: &str) -> Value {
    intent_json_in(id, status, amount, "usd", order_id)
}

/// A PaymentIntent the way Stripe serialises it.
pub fn intent_json_in(
    id: &str,
    status: &str,
    amount: i64,
    currency: &str,
    order_id: &str,
) -> Value {
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
        "client_secret": client_secret(id),
        "confirmation_method": "automatic",
        "created": 1_764_000_000,
        "currency": currency,
        "customer": null,
        "description": null,
        "excluded_payment_method_types": null,
        "last_payment_error": null,
        "latest_charge": if succeeded { json!("ch_3QxR2bLkdIwHu7ix0xyz1234") } else { Value::Null },
        "livemode": false,
        "metadata": { "order_id": order_id },
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

/// The client secret the fake gives intent `id`.
pub fn client_secret(intent_id: &str) -> String {
    format!("{intent_id}_secret_YrKJUKribcBjcG8HVhfZluoGH")
}

/// A Stripe error answer: `{"error": {...}}` with the given status.
pub fn stripe_error(status: u16, error: Value) -> ResponseTemplate {
    ResponseTemplate::new(status)
        .insert_header("request-id", "req_7Y3bT1iUq0fXyZ")
        .set_body_json(json!({ "error": error }))
}

/// A succeeded Refund the way Stripe serialises it.
fn refund_json(key: &str, intent_id: &str, amount: i64) -> Value {
    json!({
        "id": format!("re_{key}"),
        "object": "refund",
        "amount": amount,
        "balance_transaction": "txn_3QxR2bLkdIwHu7ix1BtXn123",
        "charge": "ch_3QxR2bLkdIwHu7ix0xyz1234",
        "created": 1_764_000_500,
        "currency": "usd",
        "destination_details": {
            "card": { "reference_status": "pending", "reference_type": "acquirer_reference_number", "type": "refund" },
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

// --- Requests ---------------------------------------------------------------------------------

/// Decodes an `application/x-www-form-urlencoded` body into (key, value) pairs.
pub fn form(request: &Request) -> Vec<(String, String)> {
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

/// One field of a decoded form.
pub fn field<'a>(fields: &'a [(String, String)], key: &str) -> Option<&'a str> {
    fields
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

/// A request header as text.
pub fn header<'a>(request: &'a Request, name: &str) -> Option<&'a str> {
    request.headers.get(name).and_then(|v| v.to_str().ok())
}

/// The requests the fake received for `method path`.
pub async fn requests_to(server: &MockServer, http_method: &str, url_path: &str) -> Vec<Request> {
    server
        .received_requests()
        .await
        .expect("request recording is on")
        .into_iter()
        .filter(|r| r.method.as_str() == http_method && r.url.path() == url_path)
        .collect()
}

/// The `Idempotency-Key` of every `POST /v1/payment_intents` received so far.
pub async fn create_keys(server: &MockServer) -> Vec<String> {
    requests_to(server, "POST", CREATE)
        .await
        .iter()
        .map(|r| header(r, "idempotency-key").unwrap_or_default().to_owned())
        .collect()
}

// --- The fake ---------------------------------------------------------------------------------

const CREATE: &str = "/v1/payment_intents";

/// The intent id the fake gives the order `order_id` (one intent per order, like Stripe does
/// for one idempotency key).
pub fn intent_id_for(order_id: &str) -> String {
    let simple = order_id
        .parse::<Uuid>()
        .map_or_else(|_| order_id.replace('-', ""), |id| id.simple().to_string());
    format!("pi_{simple}")
}

/// A Stripe endpoint of the fake whose answer a test can override.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum Endpoint {
    Retrieve,
    Cancel,
    Refund,
}

/// What the fake remembers: each PaymentIntent's status (intents it was not told about are
/// `requires_payment_method`, as after creation) and the endpoints answering with a canned
/// error. wiremock's scoped mocks cannot do the latter: with priorities, dropping a guard
/// deactivates the wrong mock (wiremock 0.6.5 sorts the mock list but keeps positional ids).
#[derive(Clone, Default)]
pub struct Intents {
    statuses: Arc<Mutex<HashMap<String, String>>>,
    overrides: Arc<Mutex<HashMap<Endpoint, ResponseTemplate>>>,
}

impl Intents {
    /// Sets an intent's status, as a customer's payment (or Stripe) would.
    pub fn set(&self, intent_id: &str, status: &str) {
        self.statuses
            .lock()
            .unwrap()
            .insert(intent_id.to_owned(), status.to_owned());
    }

    /// Makes `endpoint` answer `response` until [`Intents::restore`].
    pub fn fail(&self, endpoint: Endpoint, response: ResponseTemplate) {
        self.overrides.lock().unwrap().insert(endpoint, response);
    }

    /// Makes `endpoint` behave normally again.
    pub fn restore(&self, endpoint: Endpoint) {
        self.overrides.lock().unwrap().remove(&endpoint);
    }

    fn get(&self, intent_id: &str) -> String {
        self.statuses
            .lock()
            .unwrap()
            .get(intent_id)
            .cloned()
            .unwrap_or_else(|| "requires_payment_method".to_owned())
    }

    fn overridden(&self, endpoint: Endpoint) -> Option<ResponseTemplate> {
        self.overrides.lock().unwrap().get(&endpoint).cloned()
    }
}

fn intent_id_in(request: &Request) -> String {
    let path = request
        .url
        .path()
        .trim_start_matches("/v1/payment_intents/");
    path.trim_end_matches("/cancel").to_owned()
}

/// Answers `POST /v1/payment_intents` like Stripe: a new intent for the order named in
/// `metadata[order_id]`, with the amount and currency that were asked for.
pub struct CreateIntent {
    delay: Duration,
}

impl CreateIntent {
    /// Answers at once.
    pub fn at_once() -> Self {
        Self::after(Duration::ZERO)
    }

    /// Answers after `delay`.
    pub fn after(delay: Duration) -> Self {
        Self { delay }
    }
}

impl Respond for CreateIntent {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let fields = form(request);
        let order_id = field(&fields, "metadata[order_id]").unwrap_or("unknown");
        let amount: i64 = field(&fields, "amount")
            .and_then(|a| a.parse().ok())
            .unwrap_or(0);
        let currency = field(&fields, "currency").unwrap_or("usd");
        // One intent per idempotency key, as Stripe does: the checkout's key gives the order's
        // usual intent, any other key (a replacement) another one.
        let key = header(request, "idempotency-key").unwrap_or_default();
        let id = if key.is_empty() || key == format!("order-{order_id}-pi") {
            intent_id_for(order_id)
        } else {
            let suffix: String = key
                .chars()
                .filter(char::is_ascii_alphanumeric)
                .rev()
                .take(8)
                .collect();
            format!("{}_{suffix}", intent_id_for(order_id))
        };
        remember_intent(&id, amount, currency, order_id);
        ResponseTemplate::new(200)
            .set_body_json(known_intent_json(&id, "requires_payment_method"))
            .set_delay(self.delay)
    }
}

/// `GET /v1/payment_intents/{id}`: the intent in its current state.
struct RetrieveIntent(Intents);

impl Respond for RetrieveIntent {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        if let Some(response) = self.0.overridden(Endpoint::Retrieve) {
            return response;
        }
        let id = intent_id_in(request);
        ResponseTemplate::new(200).set_body_json(known_intent_json(&id, &self.0.get(&id)))
    }
}

/// `POST /v1/payment_intents/{id}/cancel`, like Stripe: a succeeded or processing intent
/// cannot be cancelled (400 `payment_intent_unexpected_state`, the intent embedded).
struct CancelIntent(Intents);

impl Respond for CancelIntent {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        if let Some(response) = self.0.overridden(Endpoint::Cancel) {
            return response;
        }
        let id = intent_id_in(request);
        let status = self.0.get(&id);
        if matches!(status.as_str(), "succeeded" | "processing") {
            return stripe_error(
                400,
                json!({
                    "type": "invalid_request_error",
                    "code": "payment_intent_unexpected_state",
                    "message": format!("You cannot cancel this PaymentIntent because it has a status of {status}."),
                    "payment_intent": known_intent_json(&id, &status),
                }),
            );
        }
        self.0.set(&id, "canceled");
        ResponseTemplate::new(200).set_body_json(known_intent_json(&id, "canceled"))
    }
}

/// `POST /v1/refunds`: a succeeded refund of the intent named in the form.
struct CreateRefund(Intents);

impl Respond for CreateRefund {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        if let Some(response) = self.0.overridden(Endpoint::Refund) {
            return response;
        }
        let fields = form(request);
        let intent = field(&fields, "payment_intent").unwrap_or("pi_unknown");
        // One refund per idempotency key, as Stripe keeps it.
        let key: String = header(request, "idempotency-key")
            .unwrap_or("none")
            .chars()
            .filter(char::is_ascii_alphanumeric)
            .collect();
        let amount: i64 = field(&fields, "amount")
            .and_then(|a| a.parse().ok())
            .unwrap_or(2_000);
        ResponseTemplate::new(200).set_body_json(refund_json(&key, intent, amount))
    }
}

/// A running stateful Stripe fake: creates, retrieves and cancels intents, and refunds. Its
/// mocks have wiremock's default priority (5), so a test can mount a higher-priority mock in
/// front of one.
pub async fn stripe_fake() -> (MockServer, Intents) {
    stripe_fake_with_slow_first_create(Duration::ZERO).await
}

/// [`stripe_fake`] whose first `POST /v1/payment_intents` answers after `first_delay` (and
/// every later one at once), so a test can stop a worker in the middle of a checkout.
pub async fn stripe_fake_with_slow_first_create(first_delay: Duration) -> (MockServer, Intents) {
    let server = MockServer::start().await;
    let intents = Intents::default();
    if !first_delay.is_zero() {
        Mock::given(method("POST"))
            .and(path(CREATE))
            .respond_with(CreateIntent::after(first_delay))
            .up_to_n_times(1)
            .with_priority(1)
            .mount(&server)
            .await;
    }
    Mock::given(method("POST"))
        .and(path(CREATE))
        .respond_with(CreateIntent::at_once())
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path_regex(r"^/v1/payment_intents/pi_[A-Za-z0-9_]+$"))
        .respond_with(RetrieveIntent(intents.clone()))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path_regex(r"^/v1/payment_intents/pi_[A-Za-z0-9_]+/cancel$"))
        .respond_with(CancelIntent(intents.clone()))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1/refunds"))
        .respond_with(CreateRefund(intents.clone()))
        .mount(&server)
        .await;
    (server, intents)
}

/// The app in Stripe mode, talking to `server`.
pub async fn stripe_app(server: &MockServer) -> TestApp {
    let uri = server.uri();
    TestApp::spawn_with(move |s| {
        s.stripe.mode = shared::config::PaymentMode::Stripe;
        s.stripe.secret_key = Some(SecretString::from("sk_test_x"));
        s.stripe.api_base = Some(uri);
    })
    .await
}
