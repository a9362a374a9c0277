//! Playing Stripe: `payment_intent.succeeded` events shaped like Stripe's (the same JSON as the
//! api tests send, `shared/test-support/src/stripe.rs`) and their `Stripe-Signature` header, and
//! the PaymentIntent, Refund and error objects the `chaos` scenario's fake Stripe answers with.
//!
//! In development payment mode (no `STRIPE_SECRET_KEY`) an order's PaymentIntent is
//! `pi_dev_<order id>` and the `payment_event` job trusts the final status carried by a validly
//! signed event, so events signed with the api's `STRIPE_WEBHOOK_SECRET` pay orders for real.

use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use uuid::Uuid;

/// `t=<timestamp>,v1=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>`, as Stripe builds it.
pub(crate) fn signature(secret: &str, timestamp: i64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!(
        "t={timestamp},v1={}",
        hex::encode(mac.finalize().into_bytes())
    )
}

/// The PaymentIntent id inside a client secret (`<intent id>_secret_<suffix>`, which is how
/// Stripe.js finds it too).
pub(crate) fn intent_of_client_secret(client_secret: &str) -> Option<String> {
    let (intent, _) = client_secret.split_once("_secret_")?;
    intent.starts_with("pi_").then(|| intent.to_owned())
}

/// A signed `payment_intent.succeeded` delivery for `intent_id` of `order_id`: (body, header).
pub(crate) fn succeeded_event(
    secret: &str,
    intent_id: &str,
    client_secret: Option<&str>,
    order_id: Uuid,
    amount_cents: i64,
) -> (Vec<u8>, String) {
    let intent = IntentFields {
        id: intent_id.to_owned(),
        client_secret: client_secret.map(str::to_owned),
        amount: amount_cents,
        currency: "usd".to_owned(),
        order_id: order_id.to_string(),
        created: chrono::Utc::now().timestamp(),
    };
    let body = event_body(
        &format!("evt_{}", Uuid::now_v7().simple()),
        "payment_intent.succeeded",
        intent.json("succeeded"),
    );
    let header = signature(secret, chrono::Utc::now().timestamp(), &body);
    (body, header)
}

/// An event the way Stripe delivers it: `type` about `object`.
pub(crate) fn event_body(event_id: &str, kind: &str, object: Value) -> Vec<u8> {
    let event = json!({
        "id": event_id,
        "object": "event",
        "api_version": "2026-09-30.endive",
        "created": chrono::Utc::now().timestamp(),
        "livemode": false,
        "pending_webhooks": 1,
        "request": { "id": null, "idempotency_key": null },
        "type": kind,
        "data": { "object": object }
    });
    serde_json::to_vec(&event).expect("event JSON")
}

/// What a PaymentIntent was created with; the rest of Stripe's object follows from its status.
#[derive(Debug, Clone)]
pub(crate) struct IntentFields {
    pub id: String,
    pub client_secret: Option<String>,
    pub amount: i64,
    pub currency: String,
    /// `metadata.order_id`.
    pub order_id: String,
    /// Unix time of creation.
    pub created: i64,
}

impl IntentFields {
    /// The PaymentIntent in `status` the way Stripe serialises it, with every field
    /// async-stripe's strict parser requires (the same object as `shared/test-support`'s fake).
    pub(crate) fn json(&self, status: &str) -> Value {
        let succeeded = status == "succeeded";
        let canceled = status == "canceled";
        json!({
            "id": self.id,
            "object": "payment_intent",
            "amount": self.amount,
            "amount_capturable": 0,
            "amount_details": { "tip": {} },
            "amount_received": if succeeded { self.amount } else { 0 },
            "application": null,
            "application_fee_amount": null,
            "automatic_payment_methods": { "allow_redirects": "always", "enabled": true },
            "canceled_at": if canceled { json!(self.created + 1) } else { Value::Null },
            "cancellation_reason": if canceled { json!("requested_by_customer") } else { Value::Null },
            "capture_method": "automatic_async",
            "client_secret": self.client_secret,
            "confirmation_method": "automatic",
            "created": self.created,
            "currency": self.currency,
            "customer": null,
            "description": null,
            "excluded_payment_method_types": null,
            "last_payment_error": null,
            "latest_charge": if succeeded { json!("ch_3QxR2bLkdIwHu7ix0xyz1234") } else { Value::Null },
            "livemode": false,
            "metadata": { "order_id": self.order_id },
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
}

/// A succeeded Refund the way Stripe serialises it.
pub(crate) fn refund_json(id: &str, intent_id: &str, amount: i64, currency: &str) -> Value {
    json!({
        "id": id,
        "object": "refund",
        "amount": amount,
        "balance_transaction": "txn_3QxR2bLkdIwHu7ix1BtXn123",
        "charge": "ch_3QxR2bLkdIwHu7ix0xyz1234",
        "created": chrono::Utc::now().timestamp(),
        "currency": currency,
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

/// Stripe's error body: `{"error": {type, code, message, ...extra}}`.
pub(crate) fn error_json(kind: &str, code: Option<&str>, message: &str, extra: Value) -> Value {
    let mut error = json!({ "type": kind, "message": message });
    if let Some(code) = code {
        error["code"] = json!(code);
    }
    if let (Some(error), Value::Object(extra)) = (error.as_object_mut(), extra) {
        error.extend(extra);
    }
    json!({ "error": error })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_matches_a_known_hmac() {
        // HMAC-SHA256("key", "1.{}") computed independently (Python's hmac module).
        assert_eq!(
            signature("key", 1, b"{}"),
            "t=1,v1=1ba6b8171186efc613e8bcc0cbdab2748f24984d7c5a84faa2637afa0e40d224"
        );
    }

    #[test]
    fn the_intent_id_comes_from_the_client_secret() {
        assert_eq!(
            intent_of_client_secret("pi_dev_0193_secret_abc").as_deref(),
            Some("pi_dev_0193")
        );
        assert_eq!(intent_of_client_secret("nonsense"), None);
    }
}
