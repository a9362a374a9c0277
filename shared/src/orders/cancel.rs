//! Cancellation of a pending order by its buyer (no job: the PaymentIntent is cancelled first,
//! outside any transaction, then the order is closed under its row lock).

use crate::domain::OrderStatus;
use sqlx::PgPool;
use uuid::Uuid;

use crate::{
    db::{self, StoreError},
    gate::StockGate,
    payment_events::mismatch::{self, Source},
    payments::{IntentStatus, PaymentError, Payments, matching::ExpectedPayment},
};

/// Why a cancellation was refused.
#[derive(Debug, thiserror::Error)]
pub enum CancelError {
    /// No such order for this buyer.
    #[error("order not found")]
    NotFound,
    /// Only pending orders can be cancelled.
    #[error("only orders awaiting payment can be cancelled (this one is {0})")]
    NotPending(String),
    /// The payment provider could not cancel the PaymentIntent; nothing changed, try again.
    #[error("the payment could not be cancelled right now: {0}")]
    PaymentUnavailable(String),
    /// The payment already went through; the order will be marked paid by its webhook.
    #[error("the payment has already succeeded")]
    AlreadyPaid,
    /// Database failure.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for CancelError {
    fn from(e: sqlx::Error) -> Self {
        CancelError::Store(e.into())
    }
}

/// Cancels a pending order: the PaymentIntent first (no lock held during the call; idempotent),
/// then the order and its reservation in one transaction, then the gate.
#[tracing::instrument(skip_all, fields(order.id = %order_id, user.id = %buyer_id))]
pub async fn cancel(
    pool: &PgPool,
    gate: &StockGate,
    payments: &Payments,
    order_id: Uuid,
    buyer_id: Uuid,
) -> Result<(), CancelError> {
    let order = {
        let mut conn = pool.acquire().await?;
        db::orders::find(&mut conn, order_id).await?
    };
    let order = order
        .filter(|o| o.buyer_id == Some(buyer_id))
        .ok_or(CancelError::NotFound)?;
    if order.status != OrderStatus::PendingPayment {
        return Err(CancelError::NotPending(order.status.to_string()));
    }
    if let Some(intent_id) = &order.payment_intent_id {
        let key = format!("order-{order_id}-cancel");
        match payments.cancel_intent(intent_id, &key).await {
            Ok(intent) if intent.status == IntentStatus::Succeeded => {
                let Err(mismatches) = ExpectedPayment::from(&order).verify(&intent) else {
                    return Err(CancelError::AlreadyPaid);
                };
                // Paid, but not what this order costs: the money goes back and the buyer's
                // cancel goes ahead.
                mismatch::refund_mismatch(
                    pool,
                    payments,
                    &order,
                    &intent,
                    &mismatches,
                    Source::Cancel,
                    None,
                )
                .await
                .map_err(|e| CancelError::PaymentUnavailable(e.to_string()))?;
            }
            Ok(_) => {}
            Err(PaymentError::Retryable(reason)) => {
                return Err(CancelError::PaymentUnavailable(reason));
            }
            Err(PaymentError::Permanent { message, .. }) => {
                return Err(CancelError::PaymentUnavailable(message));
            }
        }
    }
    let mut tx = pool.begin().await?;
    let released = db::orders::close_pending(
        &mut tx,
        order_id,
        OrderStatus::Cancelled,
        "cancelled_by_buyer",
    )
    .await?;
    tx.commit().await?;
    let Some(released) = released else {
        // Paid or closed between our read and the update: report the state it is in now.
        let mut conn = pool.acquire().await?;
        let status = db::orders::find(&mut conn, order_id)
            .await?
            .map_or_else(|| "unknown".into(), |o| o.status.to_string());
        return Err(CancelError::NotPending(status));
    };
    if let Err(e) = gate.release(&released).await {
        tracing::warn!(error.message = %e, "could not return units to the stock gate");
    }
    Ok(())
}
