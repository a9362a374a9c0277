//! Processing a checkout job on the worker.
//!
//! 1. Claim the job row (a duplicate delivery finds it claimed or finished and does nothing).
//! 2. If no order exists for the job yet: reserve and create it in one transaction.
//! 3. Outside any transaction, create the PaymentIntent with an idempotency key derived from the
//!    order id, then store it and finish the job in one statement.
//!
//! In development payment mode the intent is computed locally (no network), so steps 2 and 3 are
//! one transaction: fewer round trips and one commit less per checkout.
//!
//! A job's first delivery, the common case, does steps 1 and 2 in one statement instead
//! ([`first_attempt`]): it reads the job and its listings, plans the order, and one statement
//! claims the job and writes the order if nothing it was planned from changed meanwhile; one
//! commit per checkout instead of two. Whatever it cannot settle that way (another delivery got
//! the job, a listing changed, the plan refuses) goes the usual way above, which decides under
//! the row locks.
//!
//! A crash between any two steps is safe: the order is found by its job id and the
//! PaymentIntent call is idempotent, so a re-run produces exactly one order and one intent.

use crate::domain::OrderStatus;
use std::time::Duration;

use redis::aio::ConnectionManager;
use sqlx::PgPool;
use uuid::Uuid;

use super::{
    CheckoutPayload,
    reserve::{
        KnownIntent, OrderDraft, Reservation, claim_and_reserve, plan, reserve, store_intent,
    },
};
use crate::{
    db::{self, StoreError, jobs::JobRow, orders::OrderRow},
    domain::money::MoneyLimits,
    gate::StockGate,
    job_events,
    jobs::{self, Checkout, Job as _},
    payments::{PaymentError, Payments, matching::ExpectedPayment},
};

/// What a checkout job needs.
#[derive(Clone)]
pub struct CheckoutDeps {
    /// Postgres.
    pub pool: PgPool,
    /// Postgres for the first delivery's two statements (`Services::hot_pool`).
    pub hot_pool: PgPool,
    /// Redis (job completion events).
    pub redis: ConnectionManager,
    /// Deployment key prefix.
    pub prefix: String,
    /// The stock gate.
    pub gate: StockGate,
    /// The payment provider.
    pub payments: Payments,
    /// How long a pending order holds its units.
    pub order_ttl: Duration,
    /// The money limits an order must stay within (re-checked under the row locks).
    pub limits: MoneyLimits,
}

/// How a run ended (also stored by apalis as the task result).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum ProcessOutcome {
    /// Another delivery already handled (or is handling) the job.
    Skipped,
    /// The order exists and has its PaymentIntent.
    Succeeded {
        /// The order.
        order_id: Uuid,
    },
    /// The job ended `failed` with this code.
    Failed {
        /// e.g. `out_of_stock`, `payment_failed`, `attempts_exhausted`.
        code: String,
    },
}

/// A run that should be retried later (the job row is back to `queued`).
#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    /// The payment provider could not be reached; retry with backoff.
    #[error("payment provider unavailable: {0}")]
    PaymentUnavailable(String),
    /// Another delivery holds the job's claim; retry once it may have lapsed.
    #[error("the job is claimed by another delivery")]
    Busy,
    /// Database or Redis failure; the claim is handed back and the job retried.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for ProcessError {
    fn from(e: sqlx::Error) -> Self {
        ProcessError::Store(e.into())
    }
}

/// Runs one delivery of checkout job `job_id`.
#[tracing::instrument(skip_all, fields(job.id = %job_id))]
pub async fn process(deps: &CheckoutDeps, job_id: Uuid) -> Result<ProcessOutcome, ProcessError> {
    if let Some(outcome) = first_attempt(deps, job_id).await? {
        return Ok(outcome);
    }
    let skipped = ProcessOutcome::Skipped;
    jobs::claimed(
        &deps.pool,
        job_id,
        Checkout::NAME,
        skipped,
        |job| async move { run_claimed(deps, &job).await },
    )
    .await
}

impl jobs::ClaimFailure for ProcessError {
    fn busy() -> Self {
        Self::Busy
    }
    fn is_store(&self) -> bool {
        matches!(self, Self::Store(_))
    }
}

/// The attempt of a claimed job.
async fn run_claimed(deps: &CheckoutDeps, job: &JobRow) -> Result<ProcessOutcome, ProcessError> {
    let payload: CheckoutPayload = match serde_json::from_value(job.payload.clone()) {
        Ok(p) => p,
        Err(e) => return finish_failed(deps, job, None, "invalid_payload", &e.to_string()).await,
    };
    // Only a claim after the first can find an order: orders are created by claimed attempts.
    let existing = if job.attempts > 1 {
        let mut conn = deps.pool.acquire().await?;
        db::orders::find_by_checkout_job(&mut conn, job.id)
            .await?
            .map(OrderRef::from)
    } else {
        None
    };
    if job.attempts > job.max_attempts {
        let units = existing.is_none().then(|| payload.units());
        let message = "gave up after repeated failures";
        return finish_failed(deps, job, units, "attempts_exhausted", message).await;
    }
    let order = match existing {
        Some(order) => order,
        None => match create_order(deps, job, &payload).await? {
            Created::Order(order) => order,
            Created::Finished(order_id) => {
                job_events::publish(&deps.redis, &deps.prefix, job.id).await;
                return Ok(ProcessOutcome::Succeeded { order_id });
            }
            Created::Refused { code, message } => {
                let units = Some(payload.units());
                return finish_failed(deps, job, units, code, &message).await;
            }
        },
    };
    attach_payment(deps, job, &order).await
}

/// The first delivery of a job that was never attempted, in two round trips: `None` when it
/// wrote nothing and the usual way must decide.
async fn first_attempt(
    deps: &CheckoutDeps,
    job_id: Uuid,
) -> Result<Option<ProcessOutcome>, ProcessError> {
    let mut conn = deps.hot_pool.acquire().await?;
    let Some(queued) = db::checkout::queued_checkout(&mut conn, job_id).await? else {
        return Ok(None);
    };
    let Ok(payload) = serde_json::from_value::<CheckoutPayload>(queued.payload) else {
        return Ok(None);
    };
    let draft = draft(deps, job_id, queued.owner_id, &payload);
    // A refusal is decided the usual way, under the locks (it may have been a stale read).
    let Ok(planned) = plan(&queued.listings, &draft) else {
        return Ok(None);
    };
    let Some(job) = claim_and_reserve(&mut conn, &draft, &planned).await? else {
        return Ok(None);
    };
    drop(conn);
    let order_id = draft.order_id;
    if draft.intent.is_some() {
        job_events::publish(&deps.redis, &deps.prefix, job.id).await;
        return Ok(Some(ProcessOutcome::Succeeded { order_id }));
    }
    let order = OrderRef {
        id: order_id,
        status: OrderStatus::PendingPayment,
        total_cents: planned.total_cents,
        currency: planned.currency,
        payment_intent_id: None,
        client_secret: None,
    };
    let result = attach_payment(deps, &job, &order).await;
    if matches!(result, Err(ProcessError::Store(_))) {
        jobs::release_after_error(&deps.pool, job.id, job.attempts).await;
    }
    result.map(Some)
}

/// The order a delivery of job `job_id` creates for `buyer_id`: a fresh id and, in development
/// payment mode, its locally known PaymentIntent.
fn draft<'a>(
    deps: &CheckoutDeps,
    job_id: Uuid,
    buyer_id: Uuid,
    payload: &'a CheckoutPayload,
) -> OrderDraft<'a> {
    let order_id = Uuid::now_v7();
    // Development mode derives the intent from the order id without any call, so it is known
    // before the transaction and stored with the order.
    let intent = deps.payments.local_intent(order_id).map(|i| KnownIntent {
        id: i.id,
        client_secret: i.client_secret,
    });
    OrderDraft {
        order_id,
        job_id,
        buyer_id,
        payload,
        ttl_secs: deps.order_ttl.as_secs_f64(),
        limits: deps.limits,
        intent,
    }
}

/// The order fields payment setup needs.
#[derive(Debug)]
struct OrderRef {
    id: Uuid,
    status: OrderStatus,
    total_cents: i64,
    currency: String,
    payment_intent_id: Option<String>,
    client_secret: Option<String>,
}

impl From<OrderRow> for OrderRef {
    fn from(o: OrderRow) -> Self {
        Self {
            id: o.id,
            status: o.status,
            total_cents: o.total_cents,
            currency: o.currency,
            payment_intent_id: o.payment_intent_id,
            client_secret: o.client_secret,
        }
    }
}

/// What creating the order led to.
enum Created {
    /// The order exists and still needs its PaymentIntent.
    Order(OrderRef),
    /// The order exists with its (locally known) intent, and the job is finished.
    Finished(Uuid),
    /// Postgres refused the reservation (stock short, currencies mixed, a limit exceeded):
    /// nothing was written.
    Refused {
        /// The job's error code.
        code: &'static str,
        /// What went wrong.
        message: String,
    },
}

/// Reserves and creates the order (and, in development payment mode, finishes the job too).
async fn create_order(
    deps: &CheckoutDeps,
    job: &JobRow,
    payload: &CheckoutPayload,
) -> Result<Created, ProcessError> {
    let buyer_id = job.owner_id.ok_or(StoreError::NotFound)?;
    let draft = draft(deps, job.id, buyer_id, payload);
    let (order_id, finishes) = (draft.order_id, draft.intent.is_some());
    let mut tx = deps.pool.begin().await?;
    match reserve(&mut tx, &draft).await? {
        Reservation::OutOfStock(short) => Ok(Created::Refused {
            code: "out_of_stock",
            message: format!("out of stock: {}", join_ids(&short)),
        }),
        Reservation::CurrencyMismatch(ids) => Ok(Created::Refused {
            code: "currency_mismatch",
            message: format!(
                "an order has one currency; these listings are priced in several: {}",
                join_ids(&ids)
            ),
        }),
        Reservation::LimitExceeded(limit) => Ok(Created::Refused {
            code: "limit_exceeded",
            message: format!("the order would exceed a limit: {limit}"),
        }),
        Reservation::Reserved {
            total_cents,
            currency,
        } => {
            tx.commit().await?;
            if finishes {
                return Ok(Created::Finished(order_id));
            }
            Ok(Created::Order(OrderRef {
                id: order_id,
                status: OrderStatus::PendingPayment,
                total_cents,
                currency,
                payment_intent_id: None,
                client_secret: None,
            }))
        }
    }
}

/// Creates (or re-fetches, idempotently) the PaymentIntent and finishes the job.
async fn attach_payment(
    deps: &CheckoutDeps,
    job: &JobRow,
    order: &OrderRef,
) -> Result<ProcessOutcome, ProcessError> {
    let (intent_id, client_secret) = match &order.payment_intent_id {
        Some(id) => (id.clone(), order.client_secret.clone()),
        // Cancelled or expired while payment setup was being retried: no intent for a closed
        // order, so nobody can pay for it.
        None if order.status != OrderStatus::PendingPayment => {
            let message = format!(
                "the order was {} before payment could be set up",
                order.status
            );
            return finish_failed(deps, job, None, "order_closed", &message).await;
        }
        None => {
            let key = format!("order-{}-pi", order.id);
            match deps
                .payments
                .create_intent(order.id, order.total_cents, &order.currency, &key)
                .await
            {
                Ok(intent) => {
                    // Stripe's answer is an external claim like any other: an intent for another
                    // amount, currency or order is never handed to the buyer to pay.
                    let expected = ExpectedPayment {
                        order_id: order.id,
                        intent_id: Some(intent.id.clone()),
                        amount_cents: order.total_cents,
                        currency: order.currency.clone(),
                    };
                    let mismatches = expected.mismatches(&intent);
                    if !mismatches.is_empty() {
                        let message = format!(
                            "the payment provider created an intent that does not match the order: {}",
                            serde_json::to_string(&mismatches).unwrap_or_default()
                        );
                        tracing::error!(payment_intent.id = %intent.id, %message);
                        return cancel_and_fail(deps, job, order.id, &message).await;
                    }
                    (intent.id, intent.client_secret)
                }
                Err(PaymentError::Retryable(reason)) => {
                    let mut conn = deps.pool.acquire().await?;
                    let retry_in = jobs::redelivery_delay(job.attempts);
                    db::jobs::requeue(&mut conn, job.id, "payment_unavailable", &reason, retry_in)
                        .await?;
                    return Err(ProcessError::PaymentUnavailable(reason));
                }
                Err(PaymentError::Permanent { code, message }) => {
                    let message = match code {
                        Some(code) => format!("{code}: {message}"),
                        None => message,
                    };
                    return cancel_and_fail(deps, job, order.id, &message).await;
                }
            }
        }
    };
    let intent = KnownIntent {
        id: intent_id,
        client_secret,
    };
    let mut conn = deps.pool.acquire().await?;
    store_intent(&mut conn, order.id, job.id, &intent).await?;
    drop(conn);
    job_events::publish(&deps.redis, &deps.prefix, job.id).await;
    Ok(ProcessOutcome::Succeeded { order_id: order.id })
}

/// The payment provider refused for good: the order is cancelled, its units released, the job
/// failed.
async fn cancel_and_fail(
    deps: &CheckoutDeps,
    job: &JobRow,
    order_id: Uuid,
    message: &str,
) -> Result<ProcessOutcome, ProcessError> {
    let mut tx = deps.pool.begin().await?;
    let released = db::orders::close_pending(
        &mut tx,
        order_id,
        OrderStatus::Cancelled,
        "payment_setup_failed",
    )
    .await?;
    db::jobs::fail(&mut tx, job.id, "payment_failed", message).await?;
    tx.commit().await?;
    release_gate(deps, released.unwrap_or_default()).await;
    job_events::publish(&deps.redis, &deps.prefix, job.id).await;
    Ok(ProcessOutcome::Failed {
        code: "payment_failed".into(),
    })
}

/// Fails the job; `units` the gate admitted for it go back (when no order holds them).
async fn finish_failed(
    deps: &CheckoutDeps,
    job: &JobRow,
    units: Option<Vec<(Uuid, i32)>>,
    code: &str,
    message: &str,
) -> Result<ProcessOutcome, ProcessError> {
    let mut tx = deps.pool.begin().await?;
    let mut released = units.unwrap_or_default();
    if let Some(order) = db::orders::find_by_checkout_job(&mut tx, job.id).await? {
        // Attempts ran out after the order was created: do not leave its units reserved.
        released = db::orders::close_pending(&mut tx, order.id, OrderStatus::Cancelled, code)
            .await?
            .unwrap_or_default();
    }
    db::jobs::fail(&mut tx, job.id, code, message).await?;
    tx.commit().await?;
    release_gate(deps, released).await;
    job_events::publish(&deps.redis, &deps.prefix, job.id).await;
    Ok(ProcessOutcome::Failed {
        code: code.to_owned(),
    })
}

/// Returns units to the gate. A Redis failure here only leaves the gate too strict until
/// reconciliation; it never risks overselling, so it is logged rather than retried.
async fn release_gate(deps: &CheckoutDeps, units: Vec<(Uuid, i32)>) {
    if let Err(e) = deps.gate.release(&units).await {
        tracing::warn!(error.message = %e, "could not return units to the stock gate");
    }
}

fn join_ids(ids: &[Uuid]) -> String {
    ids.iter()
        .map(Uuid::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}
