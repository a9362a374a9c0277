//! The api side of a Stripe webhook: verify, parse the few fields we need, store.

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use sqlx::PgPool;

use super::{
    HANDLED_EVENT_TYPES,
    verify::{self, SignatureError},
};
use crate::db::{
    StoreError,
    webhook_events::{self as events, Inserted},
};

/// The parts of a Stripe event this code reads. Everything else in the payload is ignored, so
/// a new field or a different API version never makes a validly signed event unreadable.
#[derive(Debug, Deserialize)]
struct StripeEvent {
    id: String,
    #[serde(rename = "type")]
    event_type: String,
    data: EventData,
}

#[derive(Debug, Deserialize)]
struct EventData {
    object: EventObject,
}

#[derive(Debug, Deserialize)]
struct EventObject {
    id: String,
    object: String,
    /// The PaymentIntent a charge, refund or dispute belongs to.
    #[serde(default)]
    payment_intent: Option<String>,
}

impl EventObject {
    /// The PaymentIntent the event is about: the object itself, or the one a charge, refund or
    /// dispute belongs to.
    fn intent_id(&self) -> Option<&str> {
        match self.object.as_str() {
            "payment_intent" => Some(&self.id),
            "charge" | "refund" | "dispute" => self.payment_intent.as_deref(),
            _ => None,
        }
    }
}

/// What happened to a verified event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Receipt {
    /// Stored for the first time: push its `payment_event` task.
    Stored {
        /// The event id (the task's payload).
        event_id: String,
    },
    /// Stored earlier; nothing to do.
    Duplicate,
    /// A type we do not act on, or about an object we did not create; not stored.
    Ignored,
}

/// Why a webhook request was refused (all are 400 for Stripe).
#[derive(Debug, thiserror::Error)]
pub enum ReceiveError {
    /// The signature is missing, malformed, stale or wrong.
    #[error(transparent)]
    Signature(#[from] SignatureError),
    /// Validly signed, but not an event we can read.
    #[error("the payload is not a Stripe event: {0}")]
    Payload(String),
    /// Database failure (answer 5xx so Stripe retries).
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Verifies `body` (the raw request body) against `signature` (the `Stripe-Signature` header)
/// with `secret` at `now` (Unix seconds), then stores the event if it is about one of our
/// PaymentIntents. The row is committed before this returns, so acknowledging the request
/// afterwards can lose nothing.
#[tracing::instrument(skip_all, fields(event.id))]
pub async fn receive(
    pool: &PgPool,
    secret: &SecretString,
    signature: Option<&str>,
    body: &[u8],
    now: i64,
) -> Result<Receipt, ReceiveError> {
    verify::verify(secret.expose_secret().as_bytes(), signature, body, now)?;
    let text = std::str::from_utf8(body).map_err(|e| ReceiveError::Payload(e.to_string()))?;
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|e| ReceiveError::Payload(e.to_string()))?;
    // PostgreSQL's jsonb cannot hold U+0000: such an event could never be stored, so it is
    // refused with a 400 (every retry of it gets the same answer) rather than a 500.
    if contains_nul(&value) {
        tracing::warn!("signed webhook event with a NUL character refused");
        return Err(ReceiveError::Payload(
            "the event contains a NUL character (U+0000)".to_owned(),
        ));
    }
    let event =
        StripeEvent::deserialize(&value).map_err(|e| ReceiveError::Payload(e.to_string()))?;
    tracing::Span::current().record("event.id", event.id.as_str());
    let intent_id = event.data.object.intent_id();
    let (true, Some(intent_id)) = (
        HANDLED_EVENT_TYPES.contains(&event.event_type.as_str()),
        intent_id,
    ) else {
        tracing::debug!(event.type = %event.event_type, "event type ignored");
        return Ok(Receipt::Ignored);
    };
    let mut conn = pool.acquire().await.map_err(StoreError::from)?;
    let inserted =
        events::insert_if_known(&mut conn, &event.id, &event.event_type, intent_id, text).await?;
    Ok(match inserted {
        Inserted::New => Receipt::Stored { event_id: event.id },
        Inserted::Duplicate => Receipt::Duplicate,
        Inserted::UnknownObject => {
            tracing::info!("event about a payment intent we did not create; ignored");
            Receipt::Ignored
        }
    })
}

/// Whether any key or string in `value` holds U+0000.
fn contains_nul(value: &serde_json::Value) -> bool {
    match value {
        serde_json::Value::String(s) => s.contains('\0'),
        serde_json::Value::Array(items) => items.iter().any(contains_nul),
        serde_json::Value::Object(map) => map
            .iter()
            .any(|(key, value)| key.contains('\0') || contains_nul(value)),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn only_the_fields_we_need_are_required() {
        let event: StripeEvent = serde_json::from_str(
            r#"{"id":"evt_1","type":"payment_intent.succeeded","api_version":"2099-01-01",
                "data":{"object":{"id":"pi_1","object":"payment_intent","brand_new":1}}}"#,
        )
        .unwrap();
        assert_eq!(event.data.object.id, "pi_1");
        assert_eq!(event.data.object.intent_id(), Some("pi_1"));
    }

    #[test]
    fn a_nul_anywhere_in_the_event_is_found() {
        let nul = |text: &str| contains_nul(&serde_json::from_str(text).unwrap());
        assert!(nul(r#"{"a":{"b":["x\u0000y"]}}"#));
        assert!(nul(r#"{"k\u0000":1}"#));
        assert!(!nul(r#"{"a":"\\u0000 is only text"}"#));
    }

    #[test]
    fn a_charge_refund_or_dispute_is_about_its_payment_intent() {
        for object in ["charge", "refund", "dispute"] {
            let event: StripeEvent = serde_json::from_value(serde_json::json!({
                "id": "evt_1", "type": "charge.refunded",
                "data": { "object": { "id": "x_1", "object": object, "payment_intent": "pi_9" } }
            }))
            .unwrap();
            assert_eq!(event.data.object.intent_id(), Some("pi_9"), "{object}");
        }
        let customer: StripeEvent = serde_json::from_value(serde_json::json!({
            "id": "evt_2", "type": "charge.refunded",
            "data": { "object": { "id": "cus_1", "object": "customer", "payment_intent": "pi_9" } }
        }))
        .unwrap();
        assert_eq!(customer.data.object.intent_id(), None);
    }

    proptest! {
        /// The event decoder takes any JSON document without panicking: it is an event we
        /// read, or an error.
        #[test]
        fn any_json_decodes_or_is_refused(text in r#"\{("[a-z_]{1,8}":("[^"]{0,12}"|[0-9]{1,4}|\{\}|null),?){0,6}\}"#) {
            if let Ok(value) = serde_json::from_str::<serde_json::Value>(&text) {
                let _ = contains_nul(&value);
                if let Ok(event) = StripeEvent::deserialize(&value) {
                    let _ = event.data.object.intent_id();
                }
            }
        }

        /// Deeply nested or NUL-laden values are walked without a stack or logic failure.
        #[test]
        fn nul_is_found_at_any_depth(depth in 0usize..64, nul in any::<bool>()) {
            let leaf = if nul { "a\0b" } else { "ab" };
            let mut value = serde_json::json!(leaf);
            for i in 0..depth {
                value = if i % 2 == 0 { serde_json::json!([value]) } else { serde_json::json!({ "k": value }) };
            }
            prop_assert_eq!(contains_nul(&value), nul);
        }
    }
}
