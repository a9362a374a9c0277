//! A succeeded PaymentIntent that does not match its order.
//!
//! Such a payment never marks the order paid and never touches stock or the ledger. Instead:
//! 1. it is recorded (`payment_mismatches`), counted (`payment_mismatches_total`) and logged as
//!    an error, which also reaches Sentry, before any money moves, so an operator sees it even
//!    while the refund keeps failing;
//! 2. the money it took is refunded in full, with an idempotency key per intent, so repeated
//!    reports (Stripe retries, expiry, a cancel) refund once;
//! 3. a pending order reported by a webhook gets a new PaymentIntent in place of the spent one,
//!    so the buyer can still pay until the order expires;
//! 4. the refund id is added to the record.
//!
//! The order's state is left as it is: a pending order stays pending until it is paid properly,
//! expires or is cancelled; a closed one stays closed.

use crate::domain::OrderStatus;
use sqlx::PgPool;

use super::settle::SettleError;
use crate::{
    db::{self, mismatches::MismatchReport, orders::OrderRow},
    metrics::PAYMENT_MISMATCHES,
    payments::{Intent, Payments, matching::Mismatch},
};

/// Where a mismatching payment was noticed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// A webhook event for a pending order.
    Webhook,
    /// The expiry job's cancel found the intent succeeded.
    Expiry,
    /// The buyer's cancel found the intent succeeded.
    Cancel,
    /// A payment for an order that was already closed.
    LateRefund,
}

impl Source {
    /// The name stored and exported.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Webhook => "webhook",
            Self::Expiry => "expiry",
            Self::Cancel => "cancel",
            Self::LateRefund => "late_refund",
        }
    }
}

/// A new PaymentIntent for a pending order whose intent was spent on a mismatching payment, so
/// the buyer can still pay until the order expires. The key is derived from the spent intent,
/// so a retried event creates the same one. `None` in development mode, whose intents are
/// derived from the order and cannot be replaced (nor can they mismatch).
async fn fresh_intent(
    payments: &Payments,
    order: &OrderRow,
    spent: &str,
) -> Result<Option<Intent>, SettleError> {
    if payments.is_dev() {
        return Ok(None);
    }
    let key = format!("order-{}-pi-after-{spent}", order.id);
    let intent = payments
        .create_intent(order.id, order.total_cents, &order.currency, &key)
        .await?;
    Ok(Some(intent))
}

/// The idempotency key of the refund of a mismatching payment: one refund per intent, whoever
/// notices it first.
pub fn refund_key(intent_id: &str) -> String {
    format!("intent-{intent_id}-mismatch-refund")
}

/// Records a mismatching payment, refunds it and, for a pending order reported by a webhook,
/// replaces its spent intent. `event_id` is marked processed together with the final record.
/// Returns the refund id (`None` when Stripe says it was refunded already).
///
/// An order that is `paid` or `refunded` was settled by this very intent matching earlier; a
/// later, contradicting report is recorded but moves no money.
#[tracing::instrument(skip_all, fields(order.id = %order.id, source = source.as_str()))]
pub async fn refund_mismatch(
    pool: &PgPool,
    payments: &Payments,
    order: &OrderRow,
    intent: &Intent,
    mismatches: &[Mismatch],
    source: Source,
    event_id: Option<&str>,
) -> Result<Option<String>, SettleError> {
    let source = match (source, order.status) {
        (Source::Webhook, OrderStatus::Expired | OrderStatus::Cancelled) => Source::LateRefund,
        _ => source,
    };
    for mismatch in mismatches {
        PAYMENT_MISMATCHES.inc([source.as_str(), mismatch.field]);
    }
    tracing::error!(
        payment_intent.id = %intent.id,
        mismatches = %serde_json::to_string(mismatches).unwrap_or_default(),
        "a payment does not match its order; refunding it instead of settling"
    );
    let report = MismatchReport {
        intent_id: &intent.id,
        order_id: order.id,
        source: source.as_str(),
        mismatches,
        event_id,
        refund_id: None,
    };
    {
        let mut conn = pool.acquire().await?;
        db::mismatches::record(&mut conn, &report).await?;
    }
    let settled_by_it = matches!(
        order.status,
        OrderStatus::Paid | OrderStatus::PartiallyRefunded | OrderStatus::Refunded
    );
    let refund_id = if settled_by_it {
        None
    } else {
        match payments
            .refund(&intent.id, None, &refund_key(&intent.id))
            .await
        {
            Ok(refund) => Some(refund.id),
            Err(e) if e.code() == Some("charge_already_refunded") => None,
            Err(e) => return Err(e.into()),
        }
    };
    let fresh = if source == Source::Webhook && order.status == OrderStatus::PendingPayment {
        fresh_intent(payments, order, &intent.id).await?
    } else {
        None
    };
    let mut tx = pool.begin().await?;
    db::mismatches::add_refund(&mut tx, &intent.id, refund_id.as_deref()).await?;
    if let Some(fresh) = &fresh {
        let secret = fresh.client_secret.as_deref();
        db::orders::replace_intent(&mut tx, order.id, &intent.id, &fresh.id, secret).await?;
    }
    if let Some(event_id) = event_id {
        let note = "payment does not match the order; refunded";
        db::webhook_events::mark_processed(&mut tx, event_id, Some(note)).await?;
    }
    tx.commit().await?;
    Ok(refund_id)
}
