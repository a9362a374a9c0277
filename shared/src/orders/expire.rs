//! The `expire_orders` job: pending orders past their deadline give their units back
//! (`docs/ARCHITECTURE.md`, "Payments").
//!
//! Per batch: claim the candidates in one short transaction (`FOR UPDATE SKIP LOCKED` plus a
//! short lease on the order, so concurrent runs take disjoint orders), then, with no lock held,
//! cancel each PaymentIntent at Stripe (idempotency key per order), then close each order in
//! its own short transaction that re-checks it is still pending. If Stripe says the intent
//! already succeeded, the payment is applied instead: the buyer paid in time, only the
//! confirmation was late.

use crate::domain::OrderStatus;
use std::time::Duration;

use crate::{
    db::{self, StoreError, orders::OrderRow},
    payment_events::{
        PaymentDeps,
        mismatch::{self, Source},
        settle::{self, SettleError, Settlement},
    },
    payments::{
        IntentStatus, PaymentError,
        matching::{ExpectedPayment, VerifiedPayment},
    },
};

/// Orders claimed per batch.
pub const BATCH_SIZE: i64 = 100;

/// Batches per run at most, so one run stays short; the next tick continues.
pub const MAX_BATCHES: usize = 20;

/// How long a claimed order is left to this run. An order the run could not finish (Stripe
/// unavailable, payment still processing) is retried by a later run once this lapses.
pub const CLAIM_LEASE: Duration = Duration::from_secs(120);

/// What one run did (also stored by apalis as the task result).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ExpiryReport {
    /// Orders closed as `expired`, their units released.
    pub expired: u32,
    /// Orders whose intent turned out to have succeeded, now `paid`.
    pub paid: u32,
    /// Orders left for a later run (Stripe unavailable, or the payment is processing).
    pub deferred: u32,
    /// Orders someone else settled between the claim and the close.
    pub already_settled: u32,
    /// Orders whose intent succeeded for something other than the order (amount, currency,
    /// reference): the payment was refunded and the order expired.
    #[serde(default)]
    pub mismatched: u32,
}

/// Expires every pending order past its deadline (up to [`MAX_BATCHES`] batches).
#[tracing::instrument(skip_all)]
pub async fn expire_orders(deps: &PaymentDeps) -> Result<ExpiryReport, StoreError> {
    let mut report = ExpiryReport::default();
    for _ in 0..MAX_BATCHES {
        let claimed = {
            let mut conn = deps.pool.acquire().await?;
            db::settlement::claim_expired(&mut conn, BATCH_SIZE, CLAIM_LEASE).await?
        };
        for order in &claimed {
            expire_one(deps, order, &mut report).await?;
        }
        if claimed.len() < BATCH_SIZE as usize {
            break;
        }
    }
    if report != ExpiryReport::default() {
        tracing::info!(?report, "expiry run done");
    }
    Ok(report)
}

#[tracing::instrument(skip_all, fields(order.id = %order.id))]
async fn expire_one(
    deps: &PaymentDeps,
    order: &OrderRow,
    report: &mut ExpiryReport,
) -> Result<(), StoreError> {
    let order_id = order.id;
    if let Some(intent_id) = order.payment_intent_id.as_deref() {
        let key = format!("order-{order_id}-expire");
        match deps.payments.cancel_intent(intent_id, &key).await {
            Ok(intent) if intent.status == IntentStatus::Succeeded => {
                let mismatches = match ExpectedPayment::from(order).verify(&intent) {
                    Ok(payment) => return apply_success(deps, &payment, report).await,
                    Err(mismatches) => mismatches,
                };
                // Paid, but not for this order's amount: send it back and expire the order.
                let refunded = mismatch::refund_mismatch(
                    &deps.pool,
                    &deps.payments,
                    order,
                    &intent,
                    &mismatches,
                    Source::Expiry,
                    None,
                )
                .await;
                if let Err(e) = refunded {
                    tracing::warn!(error.message = %e, "mismatch refund failed; order left pending");
                    report.deferred += 1;
                    return Ok(());
                }
                report.mismatched += 1;
            }
            Ok(_) => {}
            Err(PaymentError::Retryable(reason)) => {
                tracing::warn!(
                    reason,
                    "could not cancel the payment yet; order left pending"
                );
                report.deferred += 1;
                return Ok(());
            }
            // Stripe does not know the intent: nobody can pay it, so the order can expire (and
            // should a payment still arrive, the late-payment path refunds it).
            Err(e) if e.code() == Some("resource_missing") => {
                tracing::warn!(error.message = %e, "the payment intent is gone; expiring anyway");
            }
            // Anything else (a revoked key, say) might leave a payable intent behind: keep the
            // order pending and shout, rather than risk taking money for an expired order.
            Err(e @ PaymentError::Permanent { .. }) => {
                tracing::error!(error.message = %e, "Stripe refused the cancel; order left pending");
                report.deferred += 1;
                return Ok(());
            }
        }
    }
    let mut tx = deps.pool.begin().await?;
    let released =
        db::orders::close_pending(&mut tx, order_id, OrderStatus::Expired, "payment_timeout")
            .await?;
    tx.commit().await?;
    match released {
        Some(units) => {
            deps.release_gate(&units).await;
            report.expired += 1;
        }
        None => report.already_settled += 1,
    }
    Ok(())
}

async fn apply_success(
    deps: &PaymentDeps,
    payment: &VerifiedPayment,
    report: &mut ExpiryReport,
) -> Result<(), StoreError> {
    match settle::succeeded(deps, payment, None).await {
        Ok(Settlement::Paid) => report.paid += 1,
        Ok(_) => report.already_settled += 1,
        // Only a late refund calls Stripe here; the intent's own `succeeded` event retries it.
        Err(SettleError::Refund(e)) => {
            tracing::warn!(error.message = %e, "late refund failed; left to the payment event");
            report.deferred += 1;
        }
        Err(SettleError::Store(e)) => return Err(e),
    }
    Ok(())
}
