//! Playing Stripe: `payment_intent.succeeded` events shaped like Stripe's (the same JSON as the
//! api tests send, `shared/test-support/src/stripe.rs`) and their `Stripe-Signature` header.
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
    let now = chrono::Utc::now().timestamp();
    let event = json!({
        "id": format!("evt_{}", Uuid::now_v7().simple()),
        "object": "event",
        "api_version": "2026-09-30.endive",
        "created": now,
        "livemode": false,
        "pending_webhooks": 1,
        "request": { "id": null, "idempotency_key": null },
        "type": "payment_intent.succeeded",
        "data": { "object": intent_json(intent_id, client_secret, amount_cents, order_id) }
    });
    let body = serde_json::to_vec(&event).expect("event JSON");
    let header = signature(secret, now, &body);
    (body, header)
}

/// A succeeded PaymentIntent the way Stripe serialises it.
fn intent_json(id: &str, client_secret: Option<&str>, amount: i64, order_id: Uuid) -> Value {
    json!({
        "id": id,
        "object": "payment_intent",
        "amount": amount,
        "amount_capturable": 0,
        "amount_details": { "tip": {} },
        "amount_received": amount,
        "application": null,
        "application_fee_amount": null,
        "automatic_payment_methods": { "allow_redirects": "always", "enabled": true },
        "canceled_at": null,
        "cancellation_reason": null,
        "capture_method": "automatic_async",
        "client_secret": client_secret,
        "confirmation_method": "automatic",
        "created": chrono::Utc::now().timestamp(),
        "currency": "usd",
        "customer": null,
        "description": null,
        "excluded_payment_method_types": null,
        "last_payment_error": null,
        "latest_charge": "ch_3QxR2bLkdIwHu7ix0xyz1234",
        "livemode": false,
        "metadata": { "order_id": order_id },
        "next_action": null,
        "on_behalf_of": null,
        "payment_method": "pm_1QxR2aLkdIwHu7ixAbCdEfGh",
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
        "status": "succeeded",
        "transfer_data": null,
        "transfer_group": null
    })
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
