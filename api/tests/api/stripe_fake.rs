//! A local fake of Stripe's PaymentIntent API (`wiremock`), answering with bodies async-stripe's
//! strict parser accepts (the JSON shape is copied from `shared/tests/payments.rs`).

use secrecy::SecretString;
use serde_json::{Value, json};
use test_support::TestApp;
use uuid::Uuid;
use wiremock::{
    Mock, MockServer, Request, Respond, ResponseTemplate,
    matchers::{method, path, path_regex},
};

pub use test_support::stripe::{client_secret, known_intent_json, remember_intent};

/// The intent id the fake gives the order `order_id` (one intent per order, like Stripe does
/// for one idempotency key).
pub fn intent_id_for(order_id: &str) -> String {
    let simple = order_id
        .parse::<Uuid>()
        .map_or_else(|_| order_id.replace('-', ""), |id| id.simple().to_string());
    format!("pi_{simple}")
}

/// A Stripe error answer: `{"error": {...}}` with the given status.
pub fn stripe_error(status: u16, error: Value) -> ResponseTemplate {
    ResponseTemplate::new(status)
        .insert_header("request-id", "req_7Y3bT1iUq0fXyZ")
        .set_body_json(json!({ "error": error }))
}

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

/// Answers `POST /v1/payment_intents` like Stripe: a new intent for the order named in
/// `metadata[order_id]`, with the amount that was asked for.
pub struct CreateIntent;

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
        ResponseTemplate::new(200).set_body_json(known_intent_json(&id, "requires_payment_method"))
    }
}

/// Answers `POST /v1/payment_intents/{id}/cancel` with the intent, now canceled.
pub struct CancelIntent;

impl Respond for CancelIntent {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let id = request
            .url
            .path()
            .trim_start_matches("/v1/payment_intents/")
            .trim_end_matches("/cancel")
            .to_owned();
        ResponseTemplate::new(200).set_body_json(known_intent_json(&id, "canceled"))
    }
}

/// A running fake that creates and cancels intents successfully (priority 5, the default, so a
/// test can mount a higher-priority mock in front of it).
pub async fn stripe_fake() -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/payment_intents"))
        .respond_with(CreateIntent)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path_regex(r"^/v1/payment_intents/pi_[A-Za-z0-9_]+/cancel$"))
        .respond_with(CancelIntent)
        .mount(&server)
        .await;
    server
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
