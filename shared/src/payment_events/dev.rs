//! Development payment mode: with no Stripe keys nothing can pay, so a buyer may declare the
//! outcome of their pending order's payment. The outcome becomes a webhook event row shaped like
//! Stripe's and goes through the same `payment_event` job as a real one.

use crate::domain::OrderStatus;
use serde_json::json;
use sqlx::PgPool;
use uuid::Uuid;

use crate::db::{self, StoreError};

/// The payment outcome to simulate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DevOutcome {
    /// The buyer paid.
    Succeeded,
    /// The payment was declined; the order stays pending and may be paid again.
    Failed,
}

/// Why a simulated payment was refused.
#[derive(Debug, thiserror::Error)]
pub enum DevPaymentError {
    /// No such order for this buyer.
    #[error("order not found")]
    NotFound,
    /// Only pending orders can be paid.
    #[error("only orders awaiting payment can be paid (this one is {0})")]
    NotPending(String),
    /// The checkout job has not attached a payment intent yet.
    #[error("the order's payment is not set up yet; try again shortly")]
    NotReady,
    /// Database failure.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for DevPaymentError {
    fn from(e: sqlx::Error) -> Self {
        DevPaymentError::Store(e.into())
    }
}

/// Stores a made-up `payment_intent.succeeded` / `payment_intent.payment_failed` event for the
/// buyer's pending order and returns its id (`evt_dev_…`); the caller pushes its task.
#[tracing::instrument(skip_all, fields(order.id = %order_id, user.id = %buyer_id))]
pub async fn simulate(
    pool: &PgPool,
    order_id: Uuid,
    buyer_id: Uuid,
    outcome: DevOutcome,
) -> Result<String, DevPaymentError> {
    let mut conn = pool.acquire().await?;
    let order = db::orders::find(&mut conn, order_id)
        .await?
        .filter(|o| o.buyer_id == Some(buyer_id))
        .ok_or(DevPaymentError::NotFound)?;
    if order.status != OrderStatus::PendingPayment {
        return Err(DevPaymentError::NotPending(order.status.to_string()));
    }
    let intent_id = order.payment_intent_id.ok_or(DevPaymentError::NotReady)?;
    let (event_type, status) = match outcome {
        DevOutcome::Succeeded => ("payment_intent.succeeded", "succeeded"),
        DevOutcome::Failed => ("payment_intent.payment_failed", "requires_payment_method"),
    };
    let event_id = format!("evt_dev_{}", Uuid::now_v7().simple());
    let payload = json!({
        "id": event_id,
        "object": "event",
        "type": event_type,
        "created": chrono::Utc::now().timestamp(),
        "livemode": false,
        "data": { "object": {
            "id": intent_id,
            "object": "payment_intent",
            "status": status,
            "amount": order.total_cents,
            "currency": order.currency,
            "metadata": { "order_id": order.id },
        }},
    });
    db::webhook_events::insert(&mut conn, &event_id, event_type, &intent_id, &payload).await?;
    Ok(event_id)
}
