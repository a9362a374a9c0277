//! Does a PaymentIntent belong to our order, for exactly what the order costs?
//!
//! Stripe's word (a signed webhook, a retrieved or cancelled intent) is only applied to an order
//! when the intent's id, amount, currency and order reference (`metadata.order_id`) all match
//! what we recorded at checkout. A signature proves the event came from
//! Stripe, not that it is about the payment we expect: an intent whose amount was changed after
//! creation, or one made by other code on the same Stripe account, is signed just the same.

use serde::Serialize;
use uuid::Uuid;

use super::Intent;
use crate::db::orders::OrderRow;

/// One field where the intent disagrees with the order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Mismatch {
    /// `id`, `amount`, `amount_received`, `currency`, `order_ref` (or `status`, when a payment
    /// is verified that has not succeeded).
    pub field: &'static str,
    /// What our order says.
    pub expected: String,
    /// What the intent says (`null` when it says nothing).
    pub received: Option<String>,
}

/// What an order expects its PaymentIntent to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpectedPayment {
    /// The order.
    pub order_id: Uuid,
    /// The intent id stored on the order (`None` while payment is being set up).
    pub intent_id: Option<String>,
    /// The order's total in minor units.
    pub amount_cents: i64,
    /// The order's currency (lowercase ISO).
    pub currency: String,
}

impl From<&OrderRow> for ExpectedPayment {
    fn from(order: &OrderRow) -> Self {
        Self {
            order_id: order.id,
            intent_id: order.payment_intent_id.clone(),
            amount_cents: order.total_cents,
            currency: order.currency.clone(),
        }
    }
}

/// A succeeded PaymentIntent that matched its order in every checked field: the only thing
/// that can mark an order paid (`payment_events::settle::succeeded` takes nothing else), so no
/// path can settle an unverified payment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedPayment {
    order_id: Uuid,
    intent_id: String,
}

impl VerifiedPayment {
    /// The order it pays.
    pub fn order_id(&self) -> Uuid {
        self.order_id
    }

    /// The PaymentIntent that paid it.
    pub fn intent_id(&self) -> &str {
        &self.intent_id
    }
}

impl ExpectedPayment {
    /// `intent` as a payment of this order, if it succeeded and matches it in every field;
    /// otherwise every field that disagrees.
    pub fn verify(&self, intent: &Intent) -> Result<VerifiedPayment, Vec<Mismatch>> {
        let mut mismatches = self.mismatches(intent);
        if intent.status != super::IntentStatus::Succeeded {
            mismatches.push(Mismatch {
                field: "status",
                expected: super::IntentStatus::Succeeded.to_string(),
                received: Some(intent.status.to_string()),
            });
        }
        if mismatches.is_empty() {
            Ok(VerifiedPayment {
                order_id: self.order_id,
                intent_id: intent.id.clone(),
            })
        } else {
            Err(mismatches)
        }
    }

    /// Every field of `intent` that disagrees with the order; empty when it is the order's
    /// payment. A succeeded intent must also have received the whole amount.
    pub fn mismatches(&self, intent: &Intent) -> Vec<Mismatch> {
        let mut found = Vec::new();
        let mut check = |field, expected: String, received: Option<String>| {
            if received.as_deref() != Some(expected.as_str()) {
                found.push(Mismatch {
                    field,
                    expected,
                    received,
                });
            }
        };
        check(
            "id",
            self.intent_id.clone().unwrap_or_default(),
            Some(intent.id.clone()),
        );
        check(
            "amount",
            self.amount_cents.to_string(),
            Some(intent.amount_cents.to_string()),
        );
        if let (super::IntentStatus::Succeeded, Some(received)) =
            (intent.status, intent.amount_received)
        {
            check(
                "amount_received",
                self.amount_cents.to_string(),
                Some(received.to_string()),
            );
        }
        // Currency codes are case-insensitive; Stripe sends them lowercase.
        check(
            "currency",
            self.currency.to_ascii_lowercase(),
            Some(intent.currency.to_ascii_lowercase()),
        );
        check(
            "order_ref",
            self.order_id.to_string(),
            intent.order_ref.clone(),
        );
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::payments::IntentStatus;

    fn order() -> ExpectedPayment {
        ExpectedPayment {
            order_id: Uuid::from_u128(7),
            intent_id: Some("pi_123".into()),
            amount_cents: 12_500_000,
            currency: "usd".into(),
        }
    }

    fn paying(order: &ExpectedPayment) -> Intent {
        Intent {
            id: "pi_123".into(),
            client_secret: None,
            status: IntentStatus::Succeeded,
            amount_cents: order.amount_cents,
            amount_received: Some(order.amount_cents),
            currency: "usd".into(),
            order_ref: Some(order.order_id.to_string()),
        }
    }

    fn fields(found: &[Mismatch]) -> Vec<&'static str> {
        found.iter().map(|m| m.field).collect()
    }

    #[test]
    fn the_orders_own_intent_for_the_full_amount_matches() {
        let order = order();
        assert!(order.mismatches(&paying(&order)).is_empty());
        let verified = order.verify(&paying(&order)).expect("verified");
        assert_eq!(
            (verified.order_id(), verified.intent_id()),
            (order.order_id, "pi_123")
        );
        let unpaid = Intent {
            status: IntentStatus::Processing,
            ..paying(&order)
        };
        assert_eq!(fields(&order.verify(&unpaid).unwrap_err()), ["status"]);
        let upper = Intent {
            currency: "USD".into(),
            ..paying(&order)
        };
        assert!(order.mismatches(&upper).is_empty());
    }

    #[test]
    fn one_eur_against_a_large_usd_order_is_two_mismatches() {
        let order = order();
        let intent = Intent {
            amount_cents: 100,
            amount_received: Some(100),
            currency: "eur".into(),
            ..paying(&order)
        };
        let found = order.mismatches(&intent);
        assert_eq!(fields(&found), ["amount", "amount_received", "currency"]);
        assert_eq!(found[0].expected, "12500000");
        assert_eq!(found[0].received.as_deref(), Some("100"));
    }

    #[test]
    fn another_orders_reference_or_a_missing_one_is_a_mismatch() {
        let order = order();
        let other = Intent {
            order_ref: Some(Uuid::from_u128(8).to_string()),
            ..paying(&order)
        };
        assert_eq!(fields(&order.mismatches(&other)), ["order_ref"]);
        let none = Intent {
            order_ref: None,
            ..paying(&order)
        };
        assert_eq!(fields(&order.mismatches(&none)), ["order_ref"]);
    }

    #[test]
    fn a_different_intent_id_or_a_short_receipt_is_a_mismatch() {
        let order = order();
        let other = Intent {
            id: "pi_999".into(),
            ..paying(&order)
        };
        assert_eq!(fields(&order.mismatches(&other)), ["id"]);
        let short = Intent {
            amount_received: Some(1),
            ..paying(&order)
        };
        assert_eq!(fields(&order.mismatches(&short)), ["amount_received"]);
        // Before success nothing has been received, which is not a mismatch.
        let pending = Intent {
            status: IntentStatus::RequiresPaymentMethod,
            amount_received: Some(0),
            ..paying(&order)
        };
        assert!(order.mismatches(&pending).is_empty());
    }
}
