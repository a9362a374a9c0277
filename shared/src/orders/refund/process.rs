//! Carrying out a refund job (worker).
//!
//! 1. Claim the job row (a duplicate delivery does nothing).
//! 2. Read the order and check the lines can still be refunded.
//! 3. Refund exactly those lines' total at Stripe, with the key `refund-<job id>` (no lock held).
//! 4. In one transaction: lines, stock, ledger, the refund record, the order's status and the
//!    job's result.

use crate::domain::{LineStatus, OrderStatus};

use serde_json::json;
use uuid::Uuid;

use super::{RefundPayload, request::lines_total};
use crate::{
    db::{
        self, StoreError,
        jobs::JobRow,
        settlement::{LineRefund, RefundedLines},
    },
    job_events,
    jobs::{self, Job as _, RefundOrder},
    payment_events::PaymentDeps,
    payments::PaymentError,
};

/// How a refund job run ended (also stored by apalis as the task result).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum RefundOutcome {
    /// Another delivery handled (or is handling) the job.
    Skipped,
    /// The lines are refunded (the order fully, or partly).
    Refunded,
    /// The job ended `failed` with this code.
    Failed {
        /// e.g. `order_not_refundable`, `refund_failed`, `attempts_exhausted`.
        code: String,
    },
}

/// A run to retry later (the job row is back to `queued`).
#[derive(Debug, thiserror::Error)]
pub enum RefundError {
    /// The payment provider could not be reached; retry with backoff.
    #[error("payment provider unavailable: {0}")]
    PaymentUnavailable(String),
    /// Another delivery holds the job's claim; retry once it may have lapsed.
    #[error("the job is claimed by another delivery")]
    Busy,
    /// Database failure; the claim is handed back and the job retried.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for RefundError {
    fn from(e: sqlx::Error) -> Self {
        RefundError::Store(e.into())
    }
}

/// Runs one delivery of refund job `job_id`.
#[tracing::instrument(skip_all, fields(job.id = %job_id))]
pub async fn process(deps: &PaymentDeps, job_id: Uuid) -> Result<RefundOutcome, RefundError> {
    let skipped = RefundOutcome::Skipped;
    jobs::claimed(
        &deps.pool,
        job_id,
        RefundOrder::NAME,
        skipped,
        |job| async move { run_claimed(deps, &job).await },
    )
    .await
}

impl jobs::ClaimFailure for RefundError {
    fn busy() -> Self {
        Self::Busy
    }
    fn is_store(&self) -> bool {
        matches!(self, Self::Store(_))
    }
}

/// The attempt of a claimed refund job.
async fn run_claimed(deps: &PaymentDeps, job: &JobRow) -> Result<RefundOutcome, RefundError> {
    let Ok(payload) = serde_json::from_value::<RefundPayload>(job.payload.clone()) else {
        return fail(deps, job, "invalid_payload", "the job names no order").await;
    };
    if job.attempts > job.max_attempts {
        let message = "gave up after repeated failures";
        return fail(deps, job, "attempts_exhausted", message).await;
    }
    let mut conn = deps.pool.acquire().await?;
    let order = db::orders::find(&mut conn, payload.order_id).await?;
    let lines = db::orders::lines(&mut conn, &[payload.order_id], None).await?;
    drop(conn);
    let Some(order) = order else {
        return fail(deps, job, "order_not_found", "the order no longer exists").await;
    };
    // Older jobs name no lines: they refund every line, as they did when they were accepted.
    let line_ids = if payload.line_ids.is_empty() {
        lines.iter().map(|l| l.id).collect()
    } else {
        payload.line_ids.clone()
    };
    let refundable = matches!(
        order.status,
        OrderStatus::Paid | OrderStatus::PartiallyRefunded
    ) && lines
        .iter()
        .filter(|l| line_ids.contains(&l.id))
        .all(|l| l.status == LineStatus::AwaitingShipment);
    if !refundable {
        let message = format!(
            "the order is {} and these lines cannot be refunded",
            order.status
        );
        return fail(deps, job, "order_not_refundable", &message).await;
    }
    let Some(intent_id) = order.payment_intent_id.as_deref() else {
        return fail(deps, job, "refund_failed", "the order has no payment").await;
    };
    let amount = lines_total(&lines, &line_ids);
    // A job accepted before refunds by line used the order's key and no amount (everything);
    // keep both, so a retry of such a job sends Stripe the same request and can never refund
    // twice.
    let (key, amount_to_send) = if payload.line_ids.is_empty() {
        (format!("order-{}-refund", order.id), None)
    } else {
        (format!("refund-{}", job.id), Some(amount))
    };
    let refund_id = match deps.payments.refund(intent_id, amount_to_send, &key).await {
        Ok(refund) => Some(refund.id),
        // Refunded in full earlier (e.g. in the dashboard): the money is back either way.
        Err(e) if e.code() == Some("charge_already_refunded") => None,
        Err(PaymentError::Retryable(reason)) => {
            let mut conn = deps.pool.acquire().await?;
            let retry_in = jobs::redelivery_delay(job.attempts);
            db::jobs::requeue(&mut conn, job.id, "payment_unavailable", &reason, retry_in).await?;
            return Err(RefundError::PaymentUnavailable(reason));
        }
        Err(e @ PaymentError::Permanent { .. }) => {
            return fail(deps, job, "refund_failed", &e.to_string()).await;
        }
    };
    let refund = LineRefund {
        order_id: order.id,
        job_id: job.id,
        line_ids: &line_ids,
        amount_cents: amount,
        currency: &order.currency,
        stripe_refund_id: refund_id.as_deref(),
        reason: &payload.reason,
    };
    let mut tx = deps.pool.begin().await?;
    let refunded = db::settlement::refund_lines(&mut tx, &refund).await?;
    let result = json!({ "order_id": order.id, "refund_id": refund_id, "amount_cents": amount });
    db::jobs::succeed(&mut tx, job.id, &result).await?;
    tx.commit().await?;
    announce(deps, job, refunded).await;
    Ok(RefundOutcome::Refunded)
}

/// Returns restocked units to the gate and wakes the job's waiters.
async fn announce(deps: &PaymentDeps, job: &JobRow, refunded: RefundedLines) {
    deps.release_gate(&refunded.restocked).await;
    tracing::info!(order.status = %refunded.order_status, "lines refunded");
    job_events::publish(&deps.redis, &deps.prefix, job.id).await;
}

async fn fail(
    deps: &PaymentDeps,
    job: &JobRow,
    code: &str,
    message: &str,
) -> Result<RefundOutcome, RefundError> {
    let mut conn = deps.pool.acquire().await?;
    db::jobs::fail(&mut conn, job.id, code, message).await?;
    drop(conn);
    job_events::publish(&deps.redis, &deps.prefix, job.id).await;
    Ok(RefundOutcome::Failed {
        code: code.to_owned(),
    })
}
