//! A stateful local fake of the Stripe endpoints payments use: create, retrieve and cancel
//! PaymentIntents, and refunds.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use serde_json::json;
use wiremock::{
    Mock, MockServer, Request, Respond, ResponseTemplate,
    matchers::{method, path, path_regex},
};

use crate::stripe_fake::{CreateIntent, field, form, header, known_intent_json, stripe_error};

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
        ResponseTemplate::new(200).set_body_json(json!({
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
            "payment_intent": intent,
            "reason": null,
            "receipt_number": null,
            "source_transfer_reversal": null,
            "status": "succeeded",
            "transfer_reversal": null
        }))
    }
}

/// A running stateful Stripe fake: creates, retrieves and cancels intents, and refunds.
pub async fn payment_fake() -> (MockServer, Intents) {
    let server = MockServer::start().await;
    let intents = Intents::default();
    Mock::given(method("POST"))
        .and(path("/v1/payment_intents"))
        .respond_with(CreateIntent)
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
