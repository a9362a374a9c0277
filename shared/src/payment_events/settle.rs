//! Applying a PaymentIntent's final state to its order, shared by the `payment_event` job and
//! the expiry job (which learns of a success when Stripe refuses to cancel a paid intent).
//!
//! Each function decides under the order's row lock from the order's *current* status, so
//! concurrent or repeated calls for the same order apply the change once. When an event row
//! drove the call, it is marked processed in the same transaction as the change. No network
//! call happens while a lock is held: a late payment is refunded between two transactions.

use crate::domain::OrderStatus;
use uuid::Uuid;

use super::PaymentDeps;
use crate::{
    db::{self, StoreError, webhook_events},
    payments::{PaymentError, matching::VerifiedPayment},
};

/// What applying a final payment state did to the order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Settlement {
    /// The order is now `paid`: stock sold, sellers credited.
    Paid,
    /// The payment arrived after the order was closed and was refunded automatically.
    LateRefunded,
    /// The order was pending and is now `cancelled`, its units released.
    Cancelled,
    /// The intent did not match the order (amount, currency, id or order reference): the money
    /// was refunded and the mismatch recorded; the order did not change.
    Mismatched,
    /// The whole charge was refunded in Stripe (the dashboard): the order is `refunded` and
    /// every seller's credit reversed.
    RefundedOutside,
    /// Part of the charge was refunded in Stripe: recorded, the order `partially_refunded`.
    PartlyRefundedOutside,
    /// The payment is disputed: the sellers' funds for it are held.
    DisputeOpened,
    /// The dispute was won: the held funds are released.
    DisputeWon,
    /// The dispute was lost: the held funds stay debited.
    DisputeLost,
    /// Nothing to do: the order already reflects this payment (or is closed for another
    /// reason that this state does not change).
    AlreadySettled,
}

/// A settlement that must be retried (nothing was committed).
#[derive(Debug, thiserror::Error)]
pub enum SettleError {
    /// The refund of a late payment failed; the caller retries or escalates.
    #[error("refund of a late payment failed: {0}")]
    Refund(#[from] PaymentError),
    /// Database failure.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for SettleError {
    fn from(e: sqlx::Error) -> Self {
        SettleError::Store(e.into())
    }
}

/// The idempotency key of the automatic refund of order `order_id`.
pub fn late_refund_key(order_id: Uuid) -> String {
    format!("order-{order_id}-late-refund")
}

async fn mark_event(
    conn: &mut sqlx::PgConnection,
    event_id: Option<&str>,
    note: Option<&str>,
) -> Result<(), StoreError> {
    match event_id {
        Some(id) => webhook_events::mark_processed(conn, id, note).await,
        None => Ok(()),
    }
}

/// A verified payment of its order: a pending order becomes `paid`; a closed one (`expired`,
/// `cancelled`) gets its money back automatically; a paid or refunded one is left alone.
#[tracing::instrument(skip_all, fields(order.id = %payment.order_id()))]
pub async fn succeeded(
    deps: &PaymentDeps,
    payment: &VerifiedPayment,
    event_id: Option<&str>,
) -> Result<Settlement, SettleError> {
    let order_id = payment.order_id();
    // The common case, a pending order, is one statement that also marks the event processed.
    let mut conn = deps.hot_pool.acquire().await?;
    if db::settlement::mark_paid(&mut conn, order_id, deps.fee_bps, event_id, false).await? {
        tracing::info!("order paid");
        return Ok(Settlement::Paid);
    }
    drop(conn);
    let mut tx = deps.pool.begin().await?;
    let order = db::orders::lock(&mut tx, order_id)
        .await?
        .ok_or(StoreError::NotFound)?;
    if matches!(order.status, OrderStatus::Expired | OrderStatus::Cancelled) {
        // Release the lock before talking to Stripe; the refund is re-checked afterwards.
        tx.rollback().await?;
        return refund_late(deps, order_id, payment.intent_id(), event_id).await;
    }
    mark_event(&mut tx, event_id, Some("order already settled")).await?;
    tx.commit().await?;
    Ok(Settlement::AlreadySettled)
}

/// Refunds a payment for a closed order in full (the key makes a repeat a no-op at Stripe), then
/// records it on the order and in the ledger.
async fn refund_late(
    deps: &PaymentDeps,
    order_id: Uuid,
    intent_id: &str,
    event_id: Option<&str>,
) -> Result<Settlement, SettleError> {
    let refund_id = match deps
        .payments
        .refund(intent_id, None, &late_refund_key(order_id))
        .await
    {
        Ok(refund) => Some(refund.id),
        // Refunded earlier (e.g. by hand in the dashboard): the money is back either way.
        Err(e) if e.code() == Some("charge_already_refunded") => None,
        Err(e) => return Err(e.into()),
    };
    let mut tx = deps.pool.begin().await?;
    let recorded =
        db::settlement::record_late_refund(&mut tx, order_id, refund_id.as_deref(), deps.fee_bps)
            .await?;
    mark_event(&mut tx, event_id, None).await?;
    tx.commit().await?;
    if recorded {
        tracing::warn!(refund.id = ?refund_id, "payment for a closed order refunded automatically");
        Ok(Settlement::LateRefunded)
    } else {
        Ok(Settlement::AlreadySettled)
    }
}

/// The PaymentIntent of order `order_id` was canceled (by us, or in Stripe's dashboard): a
/// pending order is cancelled and its units released; any other order is left alone.
#[tracing::instrument(skip_all, fields(order.id = %order_id))]
pub async fn canceled(
    deps: &PaymentDeps,
    order_id: Uuid,
    event_id: Option<&str>,
) -> Result<Settlement, SettleError> {
    let mut tx = deps.pool.begin().await?;
    let released = db::orders::close_pending(
        &mut tx,
        order_id,
        OrderStatus::Cancelled,
        "payment_canceled",
    )
    .await?;
    let note = released.is_none().then_some("order not pending");
    mark_event(&mut tx, event_id, note).await?;
    tx.commit().await?;
    match released {
        Some(units) => {
            deps.release_gate(&units).await;
            Ok(Settlement::Cancelled)
        }
        None => Ok(Settlement::AlreadySettled),
    }
}
