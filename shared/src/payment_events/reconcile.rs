//! The `reconcile_payments` job: the ledger and Stripe agree with every recently settled order.
//!
//! Two checks per order (paid, partly or fully refunded, changed within
//! `RECONCILE_PAYMENTS_WINDOW_HOURS`, at most `RECONCILE_PAYMENTS_MAX_ORDERS` per run):
//! * **ledger**: the money entries of the order (sales, refunds, refunds made in Stripe) add up
//!   to what the buyer paid minus what went back (`total_cents − refunded_cents`); fees and
//!   dispute holds are our own split of that money and are left out;
//! * **stripe**: the PaymentIntent, retrieved (no lock held), succeeded for exactly the order's
//!   id, amount, currency and reference (skipped in development payment mode, which has no
//!   Stripe to ask).
//!
//! Each drifted order is logged as an error (Sentry) and the counts are exported as
//! `payment_drift_orders{kind}`. Nothing is changed: a drift means a bug or money moved where
//! we do not see it, and a human decides.

use serde::{Deserialize, Serialize};

use super::PaymentDeps;
use crate::{
    db::{self, StoreError},
    metrics::PAYMENT_DRIFT,
    payments::{PaymentError, matching::ExpectedPayment},
};

/// What one run found (also stored by apalis as the task result).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentReconcileReport {
    /// Orders checked.
    pub checked: u32,
    /// Orders whose ledger does not add up to their net payment.
    pub ledger_drift: u32,
    /// Orders whose PaymentIntent at Stripe disagrees with them.
    pub stripe_drift: u32,
    /// Orders Stripe could not be asked about this time (retried by the next run).
    pub unchecked: u32,
}

/// Checks the settled orders changed within `window`, newest first, at most `limit` of them.
#[tracing::instrument(skip_all)]
pub async fn reconcile_payments(
    deps: &PaymentDeps,
    window: std::time::Duration,
    limit: i64,
) -> Result<PaymentReconcileReport, StoreError> {
    let orders = {
        let mut conn = deps.pool.acquire().await?;
        db::settlement::settled_since(&mut conn, window, limit).await?
    };
    let mut report = PaymentReconcileReport::default();
    for settled in &orders {
        report.checked += 1;
        let order = &settled.order;
        if settled.ledger_gross != order.total_cents - order.refunded_cents {
            report.ledger_drift += 1;
            tracing::error!(
                order.id = %order.id,
                ledger_cents = settled.ledger_gross,
                expected_cents = order.total_cents - order.refunded_cents,
                "payment drift: the ledger does not add up to the order's net payment"
            );
        }
        let Some(intent_id) = order.payment_intent_id.as_deref() else {
            continue;
        };
        if deps.payments.is_dev() {
            continue;
        }
        match deps.payments.retrieve_intent(intent_id).await {
            Ok(intent) => {
                if let Err(mismatches) = ExpectedPayment::from(order).verify(&intent) {
                    report.stripe_drift += 1;
                    tracing::error!(
                        order.id = %order.id,
                        mismatches = %serde_json::to_string(&mismatches).unwrap_or_default(),
                        "payment drift: Stripe's PaymentIntent disagrees with the order"
                    );
                }
            }
            Err(PaymentError::Retryable(reason)) => {
                tracing::warn!(order.id = %order.id, reason, "payment reconciliation: Stripe unavailable");
                report.unchecked += 1;
            }
            Err(e) => {
                report.stripe_drift += 1;
                tracing::error!(order.id = %order.id, error.message = %e, "payment drift: Stripe refused");
            }
        }
    }
    PAYMENT_DRIFT.set(["ledger"], report.ledger_drift);
    PAYMENT_DRIFT.set(["stripe"], report.stripe_drift);
    if report.ledger_drift + report.stripe_drift > 0 {
        tracing::error!(?report, "payment reconciliation found drift");
    } else {
        tracing::info!(?report, "payment reconciliation done");
    }
    Ok(report)
}
