//! Stripe fixtures: PaymentIntent JSON with every field async-stripe's strict parser requires,
//! for the local fakes the api and worker tests answer Stripe calls with.

use std::{
    collections::HashMap,
    sync::{LazyLock, Mutex},
};

use serde_json::{Value, json};

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
