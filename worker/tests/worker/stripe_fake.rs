//! A local fake of Stripe's `POST /v1/payment_intents` whose first answer can be slow, so a
//! test can stop a worker in the middle of a checkout. The body has every field async-stripe's
//! strict parser requires (shape as in `shared/tests/payments.rs`).

use std::time::Duration;

use test_support::stripe::{intent_json, remember_intent};
use wiremock::{
    Mock, MockServer, Request, Respond, ResponseTemplate,
    matchers::{method, path},
};

const CREATE: &str = "/v1/payment_intents";

/// Answers like Stripe: one intent per order (named in `metadata[order_id]`).
struct CreateIntent {
    delay: Duration,
}

impl Respond for CreateIntent {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let body = String::from_utf8_lossy(&request.body);
        // Keys arrive percent-encoded (`metadata%5Border_id%5D`), in either case.
        let field = |name: &str| {
            body.split('&')
                .find_map(|pair| {
                    let (key, value) = pair.split_once('=')?;
                    let key = key
                        .replace("%5B", "[")
                        .replace("%5b", "[")
                        .replace("%5D", "]")
                        .replace("%5d", "]");
                    (key == name).then(|| value.to_owned())
                })
                .unwrap_or_default()
        };
        let order_id = field("metadata[order_id]");
        let amount = field("amount").parse().unwrap_or(0);
        let id = format!("pi_{}", order_id.replace('-', ""));
        remember_intent(&id, amount, "usd", &order_id);
        ResponseTemplate::new(200)
            .set_body_json(intent_json(
                &id,
                "requires_payment_method",
                amount,
                &order_id,
            ))
            .set_delay(self.delay)
    }
}

/// A fake whose first `create` answers after `first_delay`, and every later one at once.
pub async fn slow_first_intent(first_delay: Duration) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(CREATE))
        .respond_with(CreateIntent { delay: first_delay })
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(CREATE))
        .respond_with(CreateIntent {
            delay: Duration::ZERO,
        })
        .mount(&server)
        .await;
    server
}

/// The `Idempotency-Key` of every `create` received so far.
pub async fn create_keys(server: &MockServer) -> Vec<String> {
    server
        .received_requests()
        .await
        .unwrap_or_default()
        .iter()
        .filter(|r| r.url.path() == CREATE)
        .map(|r| {
            r.headers
                .get("idempotency-key")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned()
        })
        .collect()
}
