//! Buyer refunds: accepted by the api as a `refund_order` job, carried out by the worker.
//!
//! Request (api): under the order's row lock, check the buyer, `paid`, nothing shipped, and
//! insert the job row; an active refund job for the order is returned instead of a second one.
//! While that job is queued or running, shipments of the order are refused
//! (`shipments::ship`), so goods cannot leave after the money was sent back.
//!
//! Job (worker): claim the row; refund at Stripe with the key `order-<id>-refund` (no lock
//! held); then in one transaction: order and lines `refunded`, units back in stock, the sellers'
//! credit reversed, the job `succeeded`.

use std::time::Duration;

use serde_json::json;
use sqlx::PgPool;
use uuid::Uuid;

use crate::{
    db::{self, StoreError, jobs::JobRow},
    job_events,
    payment_events::PaymentDeps,
    payments::PaymentError,
};

/// The `refund_order` job kind (and queue).
pub const JOB_KIND: &str = crate::jobs::REFUND_ORDER;

/// Attempts before a refund job gives up (payment-provider outages are retried with backoff).
pub const MAX_ATTEMPTS: i32 = 8;

/// How long a claimed refund job is protected from being claimed again.
const LEASE: Duration = Duration::from_secs(120);

/// Why a refund request was refused.
#[derive(Debug, thiserror::Error)]
pub enum RefundRequestError {
    /// No such order for this buyer.
    #[error("order not found")]
    NotFound,
    /// Only paid orders can be refunded.
    #[error("only paid orders can be refunded (this one is {0})")]
    NotPaid(String),
    /// A line has shipped already.
    #[error("the order has shipped lines and cannot be refunded")]
    Shipped,
    /// Database failure.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for RefundRequestError {
    fn from(e: sqlx::Error) -> Self {
        RefundRequestError::Store(e.into())
    }
}

/// An accepted refund request.
#[derive(Debug, Clone, Copy)]
pub struct RefundAccepted {
    /// The job to poll.
    pub job_id: Uuid,
    /// `false` when an earlier request's job is still active and was returned instead: do
    /// not push it again.
    pub created: bool,
}

/// Accepts a refund of order `order_id` for `buyer_id`.
#[tracing::instrument(skip_all, fields(order.id = %order_id, user.id = %buyer_id))]
pub async fn request(
    pool: &PgPool,
    order_id: Uuid,
    buyer_id: Uuid,
) -> Result<RefundAccepted, RefundRequestError> {
    let mut tx = pool.begin().await?;
    let order = db::orders::lock(&mut tx, order_id)
        .await?
        .filter(|o| o.buyer_id == Some(buyer_id))
        .ok_or(RefundRequestError::NotFound)?;
    if let Some(job_id) = db::settlement::active_refund_job(&mut tx, order_id).await? {
        return Ok(RefundAccepted {
            job_id,
            created: false,
        });
    }
    if order.status != "paid" {
        return Err(RefundRequestError::NotPaid(order.status));
    }
    let lines = db::orders::lines(&mut tx, &[order_id], None).await?;
    if lines.iter().any(|l| l.status == "shipped") {
        return Err(RefundRequestError::Shipped);
    }
    let payload = json!({ "order_id": order_id });
    let job = db::jobs::insert(
        &mut tx,
        &db::jobs::NewJob {
            kind: JOB_KIND,
            owner_id: Some(buyer_id),
            payload: &payload,
            // Deduplicated by the active-job check under the order lock instead, so a new
            // request after a failed job is possible.
            idempotency_key: None,
            request_fingerprint: None,
            max_attempts: MAX_ATTEMPTS,
        },
    )
    .await?
    .ok_or(StoreError::NotFound)?;
    tx.commit().await?;
    Ok(RefundAccepted {
        job_id: job.id,
        created: true,
    })
}

/// How a refund job run ended (also stored by apalis as the task result).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum RefundOutcome {
    /// Another delivery handled (or is handling) the job.
    Skipped,
    /// The order is refunded.
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
    /// Database failure; the lease expires and the job is retried.
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
    let mut conn = deps.pool.acquire().await?;
    let Some(job) = db::jobs::claim(&mut conn, job_id, JOB_KIND, LEASE).await? else {
        return Ok(RefundOutcome::Skipped);
    };
    let order_id = job.payload["order_id"]
        .as_str()
        .and_then(|s| s.parse().ok());
    let Some(order_id) = order_id else {
        drop(conn);
        return fail(deps, &job, "invalid_payload", "the job names no order").await;
    };
    if job.attempts > job.max_attempts {
        drop(conn);
        return fail(
            deps,
            &job,
            "attempts_exhausted",
            "gave up after repeated failures",
        )
        .await;
    }
    let order = db::orders::find(&mut conn, order_id).await?;
    let lines = db::orders::lines(&mut conn, &[order_id], None).await?;
    drop(conn);
    let intent_id = match order {
        Some(o) if o.status == "refunded" => return finish(deps, &job, order_id, None).await,
        Some(o) if o.status == "paid" && !lines.iter().any(|l| l.status == "shipped") => {
            o.payment_intent_id
        }
        Some(o) => {
            let message = format!("the order is {} and cannot be refunded", o.status);
            return fail(deps, &job, "order_not_refundable", &message).await;
        }
        None => return fail(deps, &job, "order_not_found", "the order no longer exists").await,
    };
    let Some(intent_id) = intent_id else {
        return fail(deps, &job, "refund_failed", "the order has no payment").await;
    };
    let key = format!("order-{order_id}-refund");
    let refund_id = match deps.payments.refund(&intent_id, &key).await {
        Ok(refund) => Some(refund.id),
        // Refunded earlier (e.g. in the dashboard): the money is back either way.
        Err(e) if e.code() == Some("charge_already_refunded") => None,
        Err(PaymentError::Retryable(reason)) => {
            let mut conn = deps.pool.acquire().await?;
            db::jobs::requeue(&mut conn, job.id, "payment_unavailable", &reason).await?;
            return Err(RefundError::PaymentUnavailable(reason));
        }
        Err(e @ PaymentError::Permanent { .. }) => {
            return fail(deps, &job, "refund_failed", &e.to_string()).await;
        }
    };
    finish(deps, &job, order_id, refund_id).await
}

/// Records the refund and finishes the job in one transaction, then returns the units to the
/// gate.
async fn finish(
    deps: &PaymentDeps,
    job: &JobRow,
    order_id: Uuid,
    refund_id: Option<String>,
) -> Result<RefundOutcome, RefundError> {
    let mut tx = deps.pool.begin().await?;
    let restocked = db::settlement::refund_paid(&mut tx, order_id, refund_id.as_deref()).await?;
    let result = json!({ "order_id": order_id, "refund_id": refund_id });
    db::jobs::succeed(&mut tx, job.id, &result).await?;
    tx.commit().await?;
    if let Some(units) = restocked {
        deps.release_gate(&units).await;
        tracing::info!("order refunded");
    }
    job_events::publish(&deps.redis, &deps.prefix, job.id).await;
    Ok(RefundOutcome::Refunded)
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
