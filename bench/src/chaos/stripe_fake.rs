//! A fake Stripe run by the bench process (poem, on 127.0.0.1): the endpoints the worker calls,
//! answered with Stripe's JSON, and every call recorded with its `Idempotency-Key`.
//!
//! * `POST /v1/payment_intents`: a new intent (random id, like Stripe) for the form's `amount`,
//!   `currency` and `metadata[order_id]`.
//! * `GET /v1/payment_intents/{id}`: the intent as it is now.
//! * `POST /v1/payment_intents/{id}/cancel`: cancels it, or refuses (400
//!   `payment_intent_unexpected_state`, the intent embedded) once it succeeded or is processing.
//! * `POST /v1/refunds`: a succeeded refund of the form's `payment_intent`.
//!
//! Idempotency like Stripe's: the first answer to a POST with a key is stored and replayed for
//! every later POST with that key and the same parameters; other parameters are a 400
//! `idempotency_error`. The bench "pays" with [`FakeStripe::pay`], which marks an intent
//! succeeded and hands back the object a `payment_intent.succeeded` event carries.

use std::{
    collections::HashMap,
    net::TcpListener,
    sync::{Arc, Mutex},
};

use anyhow::Context;
use chrono::{DateTime, Utc};
use poem::{Endpoint, Request, Response, Server, http::StatusCode, listener::TcpAcceptor};
use rand::{Rng, distributions::Alphanumeric};
use serde::Serialize;
use serde_json::{Value, json};

use crate::stripe::{IntentFields, error_json, refund_json};

/// One request the fake received.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Call {
    pub at: DateTime<Utc>,
    pub method: String,
    pub path: String,
    pub idempotency_key: Option<String>,
    pub status: u16,
    /// The intent the answer was about, if any.
    pub intent: Option<String>,
    /// The stored answer to an earlier request with the same key.
    pub replayed: bool,
    /// Refused: the key was first used with other parameters.
    pub idempotency_conflict: bool,
}

/// An intent the fake created.
#[derive(Debug, Clone)]
pub(crate) struct Intent {
    pub fields: IntentFields,
    pub status: String,
}

struct Stored {
    /// Method, path and body of the first request with the key.
    fingerprint: (String, String, Vec<u8>),
    status: u16,
    body: Value,
    intent: Option<String>,
}

#[derive(Default)]
struct State {
    intents: HashMap<String, Intent>,
    by_key: HashMap<String, Stored>,
    calls: Vec<Call>,
}

/// The fake; shared between its server and the bench.
#[derive(Default)]
pub(crate) struct FakeStripe {
    state: Mutex<State>,
}

fn random(n: usize) -> String {
    rand::thread_rng()
        .sample_iter(&Alphanumeric)
        .take(n)
        .map(char::from)
        .collect()
}

/// Decodes an `application/x-www-form-urlencoded` body into (key, value) pairs.
fn form(body: &[u8]) -> Vec<(String, String)> {
    fn decode(text: &str) -> String {
        let bytes = text.as_bytes();
        let mut out = Vec::with_capacity(bytes.len());
        let mut i = 0;
        while i < bytes.len() {
            match bytes[i] {
                b'+' => out.push(b' '),
                b'%' => match bytes
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                },
                byte => out.push(byte),
            }
            i += 1;
        }
        String::from_utf8_lossy(&out).into_owned()
    }
    String::from_utf8_lossy(body)
        .split('&')
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

fn invalid(message: &str) -> (u16, Value, Option<String>) {
    (
        400,
        error_json("invalid_request_error", None, message, Value::Null),
        None,
    )
}

impl FakeStripe {
    /// Serves the fake on a free port of 127.0.0.1; returns its base URL.
    pub(crate) fn serve(self: &Arc<Self>) -> anyhow::Result<String> {
        let listener = TcpListener::bind("127.0.0.1:0").context("fake Stripe: bind")?;
        listener.set_nonblocking(true)?;
        let port = listener.local_addr()?.port();
        let acceptor = TcpAcceptor::from_std(listener).context("fake Stripe: listener")?;
        let endpoint = StripeEndpoint(self.clone());
        tokio::spawn(async move {
            if let Err(e) = Server::new_with_acceptor(acceptor).run(endpoint).await {
                eprintln!("chaos: fake Stripe stopped: {e}");
            }
        });
        Ok(format!("http://127.0.0.1:{port}"))
    }

    /// Marks `intent_id` succeeded (the customer paid) and returns the PaymentIntent object a
    /// `payment_intent.succeeded` event carries; `None` for an intent the fake never created.
    pub(crate) fn pay(&self, intent_id: &str) -> Option<Value> {
        let mut state = self.state.lock().expect("stripe lock");
        let intent = state.intents.get_mut(intent_id)?;
        intent.status = "succeeded".into();
        Some(intent.fields.json("succeeded"))
    }

    /// Every call so far.
    pub(crate) fn calls(&self) -> Vec<Call> {
        self.state.lock().expect("stripe lock").calls.clone()
    }

    /// Every intent created so far.
    pub(crate) fn intents(&self) -> Vec<Intent> {
        self.state
            .lock()
            .expect("stripe lock")
            .intents
            .values()
            .cloned()
            .collect()
    }

    fn handle(&self, method: &str, path: &str, key: Option<String>, body: &[u8]) -> (u16, Value) {
        let mut state = self.state.lock().expect("stripe lock");
        let fingerprint = (method.to_owned(), path.to_owned(), body.to_vec());
        let post = method == "POST";
        let (status, answer, intent, replayed, conflict) = match key.as_ref().filter(|_| post) {
            Some(k) if state.by_key.contains_key(k) => {
                let stored = &state.by_key[k];
                if stored.fingerprint == fingerprint {
                    (
                        stored.status,
                        stored.body.clone(),
                        stored.intent.clone(),
                        true,
                        false,
                    )
                } else {
                    let message = format!(
                        "Keys for idempotent requests can only be used with the same parameters they were first used with. Try using a key other than '{k}' if you meant to execute a different request."
                    );
                    (
                        400,
                        error_json("idempotency_error", None, &message, Value::Null),
                        None,
                        false,
                        true,
                    )
                }
            }
            _ => {
                let (status, answer, intent) = Self::answer(&mut state, method, path, body);
                if post && let Some(k) = &key {
                    state.by_key.insert(
                        k.clone(),
                        Stored {
                            fingerprint,
                            status,
                            body: answer.clone(),
                            intent: intent.clone(),
                        },
                    );
                }
                (status, answer, intent, false, false)
            }
        };
        state.calls.push(Call {
            at: Utc::now(),
            method: method.to_owned(),
            path: path.to_owned(),
            idempotency_key: key,
            status,
            intent,
            replayed,
            idempotency_conflict: conflict,
        });
        (status, answer)
    }

    fn answer(
        state: &mut State,
        method: &str,
        path: &str,
        body: &[u8],
    ) -> (u16, Value, Option<String>) {
        let rest = path.strip_prefix("/v1/payment_intents");
        match (method, rest) {
            ("POST", Some("")) => {
                let f = form(body);
                let amount: i64 = field(&f, "amount")
                    .and_then(|a| a.parse().ok())
                    .unwrap_or(0);
                let currency = field(&f, "currency").unwrap_or_default().to_owned();
                let Some(order_id) = field(&f, "metadata[order_id]") else {
                    return invalid("metadata[order_id] is missing");
                };
                if amount <= 0 || currency.len() != 3 {
                    return invalid("amount and currency are required");
                }
                let id = format!("pi_{}", random(24));
                let fields = IntentFields {
                    client_secret: Some(format!("{id}_secret_{}", random(25))),
                    id: id.clone(),
                    amount,
                    currency,
                    order_id: order_id.to_owned(),
                    created: Utc::now().timestamp(),
                };
                let answer = fields.json("requires_payment_method");
                state.intents.insert(
                    id.clone(),
                    Intent {
                        fields,
                        status: "requires_payment_method".into(),
                    },
                );
                (200, answer, Some(id))
            }
            ("GET", Some(rest)) if rest.starts_with('/') && !rest[1..].contains('/') => {
                let id = &rest[1..];
                match state.intents.get(id) {
                    Some(i) => (200, i.fields.json(&i.status), Some(id.to_owned())),
                    None => missing(id),
                }
            }
            ("POST", Some(rest)) if rest.starts_with('/') && rest.ends_with("/cancel") => {
                let id = rest[1..].trim_end_matches("/cancel").to_owned();
                let Some(intent) = state.intents.get_mut(&id) else {
                    return missing(&id);
                };
                if matches!(intent.status.as_str(), "succeeded" | "processing") {
                    let message = format!(
                        "You cannot cancel this PaymentIntent because it has a status of {}.",
                        intent.status
                    );
                    let embedded = json!({ "payment_intent": intent.fields.json(&intent.status) });
                    return (
                        400,
                        error_json(
                            "invalid_request_error",
                            Some("payment_intent_unexpected_state"),
                            &message,
                            embedded,
                        ),
                        Some(id),
                    );
                }
                intent.status = "canceled".into();
                (200, intent.fields.json("canceled"), Some(id))
            }
            ("POST", None) if path == "/v1/refunds" => {
                let f = form(body);
                let Some(intent_id) = field(&f, "payment_intent") else {
                    return invalid("payment_intent is missing");
                };
                let Some(intent) = state.intents.get(intent_id) else {
                    return missing(intent_id);
                };
                let amount = field(&f, "amount")
                    .and_then(|a| a.parse().ok())
                    .unwrap_or(intent.fields.amount);
                let refund = refund_json(
                    &format!("re_{}", random(24)),
                    intent_id,
                    amount,
                    &intent.fields.currency,
                );
                (200, refund, Some(intent_id.to_owned()))
            }
            _ => (
                404,
                error_json(
                    "invalid_request_error",
                    None,
                    &format!("Unrecognized request URL ({method}: {path})."),
                    Value::Null,
                ),
                None,
            ),
        }
    }
}

fn missing(id: &str) -> (u16, Value, Option<String>) {
    (
        404,
        error_json(
            "invalid_request_error",
            Some("resource_missing"),
            &format!("No such payment_intent: '{id}'"),
            json!({ "param": "intent" }),
        ),
        None,
    )
}

struct StripeEndpoint(Arc<FakeStripe>);

impl Endpoint for StripeEndpoint {
    type Output = Response;

    async fn call(&self, mut req: Request) -> poem::Result<Response> {
        let method = req.method().as_str().to_owned();
        let path = req.uri().path().to_owned();
        let key = req
            .headers()
            .get("idempotency-key")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = req.take_body().into_vec().await.unwrap_or_default();
        let (status, answer) = self.0.handle(&method, &path, key, &body);
        Ok(Response::builder()
            .status(StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
            .header("content-type", "application/json")
            .header("request-id", format!("req_{}", random(14)))
            .body(serde_json::to_vec(&answer).unwrap_or_default()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn create(fake: &FakeStripe, key: &str, order: &str, amount: i64) -> (u16, Value) {
        let body = format!("amount={amount}&currency=usd&metadata%5Border_id%5D={order}");
        fake.handle(
            "POST",
            "/v1/payment_intents",
            Some(key.into()),
            body.as_bytes(),
        )
    }

    #[test]
    fn the_same_key_gives_the_same_intent_and_other_parameters_are_refused() {
        let fake = FakeStripe::default();
        let (s1, a) = create(&fake, "k1", "o1", 500);
        let (s2, b) = create(&fake, "k1", "o1", 500);
        assert_eq!((s1, s2), (200, 200));
        assert_eq!(a["id"], b["id"]);
        assert_eq!(a["metadata"]["order_id"], "o1");
        let (s3, c) = create(&fake, "k1", "o1", 600);
        assert_eq!(s3, 400);
        assert_eq!(c["error"]["type"], "idempotency_error");
        let (_, d) = create(&fake, "k2", "o1", 500);
        assert_ne!(a["id"], d["id"]);
        assert_eq!(fake.intents().len(), 2);
        let calls = fake.calls();
        assert_eq!(calls.len(), 4);
        assert!(calls[1].replayed && !calls[0].replayed);
    }

    #[test]
    fn a_paid_intent_is_retrieved_succeeded_and_cannot_be_cancelled() {
        let fake = FakeStripe::default();
        let (_, a) = create(&fake, "k1", "o1", 500);
        let id = a["id"].as_str().unwrap().to_owned();
        let paid = fake.pay(&id).unwrap();
        assert_eq!(paid["status"], "succeeded");
        assert_eq!(paid["amount_received"], 500);
        let (s, now) = fake.handle("GET", &format!("/v1/payment_intents/{id}"), None, b"");
        assert_eq!((s, now["status"].as_str()), (200, Some("succeeded")));
        let (s, refused) = fake.handle(
            "POST",
            &format!("/v1/payment_intents/{id}/cancel"),
            Some("c1".into()),
            b"",
        );
        assert_eq!(s, 400);
        assert_eq!(refused["error"]["code"], "payment_intent_unexpected_state");
        assert_eq!(refused["error"]["payment_intent"]["status"], "succeeded");
        assert!(fake.pay("pi_unknown").is_none());
    }

    #[test]
    fn form_values_are_percent_decoded() {
        let f = form(b"metadata%5Border_id%5D=a-b&x=1+2&bad=%zz");
        assert_eq!(field(&f, "metadata[order_id]"), Some("a-b"));
        assert_eq!(field(&f, "x"), Some("1 2"));
        assert_eq!(field(&f, "bad"), Some("%zz"));
    }
}
