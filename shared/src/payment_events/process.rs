//! The `payment_event` job: one delivery of one stored webhook event.
//!
//! 1. Claim the `webhook_events` row (an already processed event does nothing) and count the
//!    attempt.
//! 2. Find the order by its PaymentIntent and learn the intent's real state. Events arrive
//!    late, twice and out of order, so the event type is never trusted on its own: a final
//!    state carried by a signed event (`succeeded`, `canceled`) cannot be stale and is used as
//!    is; any other state is fetched from Stripe, outside any transaction.
//! 3. Apply that state under the order's row lock ([`super::settle`]), marking the event
//!    processed in the same transaction.
//!
//! The common delivery, a signed success for a pending order that it matches, is first tried
//! in two statements instead ([`pay_pending`]): a read of the event with its order, then the
//! one that pays the order, counts the delivery and marks the event processed. One commit and
//! one round trip less per paid order; whatever it does not settle goes the way above.

use super::{
    PaymentDeps,
    mismatch::{self, Source},
    outside,
    settle::{self, SettleError, Settlement},
};
use crate::{
    db::{
        self, StoreError,
        webhook_events::{PendingEvent, WebhookEventRow},
    },
    domain::OrderStatus,
    payments::{Intent, IntentStatus, PaymentError, matching::ExpectedPayment},
};

/// Deliveries after which an event that keeps failing is given up (recorded, logged as an
/// error, and left to the expiry job, which cancels the intent or applies its success).
pub const MAX_ATTEMPTS: i32 = 25;

/// How a delivery ended (also stored by apalis as the task result).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum EventOutcome {
    /// The event was processed already.
    Skipped,
    /// Nothing to apply (see `reason`); the event is marked processed.
    Ignored {
        /// Why.
        reason: String,
    },
    /// The PaymentIntent is in a state that does not change the order (processing, failed and
    /// awaiting a new payment method, ...); the buyer may still pay.
    Unchanged {
        /// The intent's status.
        intent_status: String,
    },
    /// A final state was applied.
    Settled {
        /// What it did.
        settlement: Settlement,
    },
    /// Failed permanently or too often; recorded on the event and logged.
    GaveUp {
        /// The last error.
        error: String,
    },
}

/// A delivery that should be retried; the event stays unprocessed with this error recorded.
#[derive(Debug, thiserror::Error)]
pub enum EventError {
    /// Stripe could not be asked, or refused (`Permanent` errors are given up at once).
    #[error(transparent)]
    Payment(#[from] PaymentError),
    /// The event must wait for work of ours on the same order (a refund job in flight).
    #[error("{0}")]
    Busy(String),
    /// Database failure.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for EventError {
    fn from(e: sqlx::Error) -> Self {
        EventError::Store(e.into())
    }
}

impl From<SettleError> for EventError {
    fn from(e: SettleError) -> Self {
        match e {
            SettleError::Refund(e) => EventError::Payment(e),
            SettleError::Store(e) => EventError::Store(e),
        }
    }
}

/// Runs one delivery of event `event_id`.
#[tracing::instrument(skip_all, fields(event.id = %event_id))]
pub async fn process(deps: &PaymentDeps, event_id: &str) -> Result<EventOutcome, EventError> {
    match pay_pending(deps, event_id).await {
        Ok(Some(outcome)) => return Ok(outcome),
        Ok(None) => {}
        // Nothing was written: the usual way below claims the event, counts the delivery and
        // records the error if it recurs, so a failure here cannot retry forever uncounted.
        Err(e) => tracing::warn!(error.message = %e, "payment event: first try failed"),
    }
    let claimed = {
        let mut conn = deps.pool.acquire().await?;
        db::webhook_events::claim(&mut conn, event_id).await?
    };
    let Some(event) = claimed else {
        return Ok(EventOutcome::Skipped);
    };
    let error = match apply(deps, &event).await {
        Ok(outcome) => return Ok(outcome),
        Err(e) => e,
    };
    let permanent = matches!(error, EventError::Payment(PaymentError::Permanent { .. }));
    let mut conn = deps.pool.acquire().await?;
    if permanent || event.attempts >= MAX_ATTEMPTS {
        // Money may be involved: this needs a human, so it is logged as an error (Sentry).
        tracing::error!(
            error.message = %error, attempts = event.attempts,
            "payment event given up"
        );
        let note = format!("gave up after {} attempts: {error}", event.attempts);
        db::webhook_events::mark_processed(&mut conn, &event.id, Some(&note)).await?;
        return Ok(EventOutcome::GaveUp {
            error: error.to_string(),
        });
    }
    let retry_in = crate::jobs::redelivery_delay(event.attempts);
    db::webhook_events::record_error(&mut conn, &event.id, &error.to_string(), retry_in).await?;
    Err(error)
}

/// The common delivery in two statements: a signed `payment_intent.succeeded` whose embedded
/// intent matches a pending order of ours. One read of the event with its order (it writes
/// nothing), the payment verified as [`apply`] verifies it, then `mark_paid`, which counts the
/// delivery and marks the event processed in the statement that pays the order. `None` for
/// anything else, or when the order was no longer pending by then: nothing was written, and
/// the usual way decides, claiming the event first.
async fn pay_pending(
    deps: &PaymentDeps,
    event_id: &str,
) -> Result<Option<EventOutcome>, StoreError> {
    let mut conn = deps.hot_pool.acquire().await?;
    let Some(PendingEvent {
        event,
        order: Some(order),
    }) = db::webhook_events::pending_with_order(&mut conn, event_id).await?
    else {
        return Ok(None);
    };
    if !event.event_type.starts_with("payment_intent.")
        || order.status != OrderStatus::PendingPayment
    {
        return Ok(None);
    }
    let succeeded = embedded_intent(&event).filter(|i| i.status == IntentStatus::Succeeded);
    let Some(intent) = succeeded else {
        return Ok(None);
    };
    let expected = ExpectedPayment {
        order_id: order.id,
        intent_id: order.payment_intent_id,
        amount_cents: order.total_cents,
        currency: order.currency,
    };
    let Ok(payment) = expected.verify(&intent) else {
        return Ok(None);
    };
    let paid = db::settlement::mark_paid(
        &mut conn,
        payment.order_id(),
        deps.fee_bps,
        Some(&event.id),
        true,
    )
    .await?;
    if !paid {
        return Ok(None);
    }
    tracing::info!(order.id = %payment.order_id(), "order paid");
    Ok(Some(EventOutcome::Settled {
        settlement: Settlement::Paid,
    }))
}

async fn apply(deps: &PaymentDeps, event: &WebhookEventRow) -> Result<EventOutcome, EventError> {
    let Some(intent_id) = event.object_id.as_deref() else {
        return ignore(deps, event, "the event names no payment intent").await;
    };
    let order = {
        let mut conn = deps.pool.acquire().await?;
        db::orders::find_by_payment_intent(&mut conn, intent_id).await?
    };
    let Some(order) = order else {
        return ignore(deps, event, "no order has this payment intent").await;
    };
    if !event.event_type.starts_with("payment_intent.") {
        let settlement = outside::apply(deps, &order, event).await?;
        return Ok(EventOutcome::Settled { settlement });
    }
    let Some(intent) = current_intent(deps, event, intent_id).await? else {
        return ignore(deps, event, "the event carries no readable payment intent").await;
    };
    let id = Some(event.id.as_str());
    let settlement = match intent.status {
        IntentStatus::Succeeded => {
            // Total, currency and intent id never change once the order has its intent, so the
            // order read above is as good as a locked one for this comparison.
            match ExpectedPayment::from(&order).verify(&intent) {
                Ok(payment) => settle::succeeded(deps, &payment, id).await?,
                Err(mismatches) => {
                    mismatch::refund_mismatch(
                        &deps.pool,
                        &deps.payments,
                        &order,
                        &intent,
                        &mismatches,
                        Source::Webhook,
                        id,
                    )
                    .await?;
                    Settlement::Mismatched
                }
            }
        }
        IntentStatus::Canceled => settle::canceled(deps, order.id, id).await?,
        other => {
            // `payment_failed` leaves the intent awaiting a new payment method; `processing`
            // will settle later with its own event. The order stays pending either way.
            let mut conn = deps.pool.acquire().await?;
            let note = format!("intent is {other}; order unchanged");
            db::webhook_events::mark_processed(&mut conn, &event.id, Some(&note)).await?;
            return Ok(EventOutcome::Unchanged {
                intent_status: other.to_string(),
            });
        }
    };
    Ok(EventOutcome::Settled { settlement })
}

/// The intent's real state: the intent carried by the signed event when it is in a final state
/// (it cannot be stale then), otherwise Stripe's current answer. An embedded intent missing a
/// field we verify is not trusted either. In development mode there is no Stripe to ask: the
/// event was made up by this process (`dev::simulate`) and is the truth.
async fn current_intent(
    deps: &PaymentDeps,
    event: &WebhookEventRow,
    intent_id: &str,
) -> Result<Option<Intent>, PaymentError> {
    let embedded = embedded_intent(event);
    match embedded {
        Some(intent) if intent.status.is_final() => Ok(Some(intent)),
        _ if deps.payments.is_dev() => Ok(embedded),
        _ => Ok(Some(deps.payments.retrieve_intent(intent_id).await?)),
    }
}

/// The PaymentIntent the signed event carries, if it is readable and is the one the event is
/// about (`object_id`).
fn embedded_intent(event: &WebhookEventRow) -> Option<Intent> {
    Intent::from_event_object(&event.payload["data"]["object"])
        .filter(|intent| event.object_id.as_deref() == Some(intent.id.as_str()))
}

async fn ignore(
    deps: &PaymentDeps,
    event: &WebhookEventRow,
    reason: &str,
) -> Result<EventOutcome, EventError> {
    let mut conn = deps.pool.acquire().await?;
    db::webhook_events::mark_processed(&mut conn, &event.id, Some(reason)).await?;
    tracing::info!(reason, "payment event ignored");
    Ok(EventOutcome::Ignored {
        reason: reason.to_owned(),
    })
}
