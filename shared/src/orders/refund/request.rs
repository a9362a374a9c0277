//! Accepting a refund request (api): who may refund which lines, for how much.

use crate::domain::{LineStatus, OrderStatus};
use sqlx::PgPool;
use uuid::Uuid;

use super::{MAX_ATTEMPTS, RefundPayload, RefundScope};
use crate::jobs::{Job as _, RefundOrder};
use crate::{
    db::{self, StoreError, orders::OrderLineRow},
    domain::money,
};

/// Why a refund request was refused.
#[derive(Debug, thiserror::Error)]
pub enum RefundRequestError {
    /// No such order for this user (neither its buyer nor a seller of one of its lines).
    #[error("order not found")]
    NotFound,
    /// Only paid (or partly refunded) orders can be refunded.
    #[error("only paid orders can be refunded (this one is {0})")]
    NotPaid(String),
    /// The whole order was asked for, but a line has shipped already.
    #[error("the order has shipped lines; name the unshipped lines to refund them")]
    Shipped,
    /// Named lines are not part of this order.
    #[error("these lines are not part of the order")]
    UnknownLines(Vec<Uuid>),
    /// A seller named lines sold by someone else.
    #[error("a seller can refund only their own lines")]
    NotSeller(Vec<Uuid>),
    /// A seller asked for the whole order: sellers name the lines they refund.
    #[error("a seller refunds by naming their lines in line_ids")]
    LinesRequired,
    /// Named lines are not awaiting shipment (shipped, or refunded already).
    #[error("these lines cannot be refunded (shipped or refunded already)")]
    NotRefundable(Vec<Uuid>),
    /// A refund of other lines of this order is being processed; ask again when it is done.
    #[error("another refund of this order is in progress")]
    InProgress(Uuid),
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
    /// `false` when an earlier request's job for the same lines is still active and was
    /// returned instead: do not push it again.
    pub created: bool,
}

/// Accepts a refund of `scope` of order `order_id` asked for by `user_id`.
#[tracing::instrument(skip_all, fields(order.id = %order_id, user.id = %user_id))]
pub async fn request(
    pool: &PgPool,
    order_id: Uuid,
    user_id: Uuid,
    scope: &RefundScope,
) -> Result<RefundAccepted, RefundRequestError> {
    let mut tx = pool.begin().await?;
    let order = db::orders::lock(&mut tx, order_id)
        .await?
        .ok_or(RefundRequestError::NotFound)?;
    let lines = db::orders::lines(&mut tx, &[order_id], None).await?;
    let is_buyer = order.buyer_id == Some(user_id);
    if !is_buyer && !lines.iter().any(|l| l.seller_id == Some(user_id)) {
        return Err(RefundRequestError::NotFound);
    }
    let chosen = choose_lines(&lines, scope, is_buyer, user_id)?;
    if let Some(active) = db::settlement::active_refund_job(&mut tx, order_id).await? {
        let same = active.line_ids == chosen || active.line_ids.is_empty();
        if same {
            return Ok(RefundAccepted {
                job_id: active.id,
                created: false,
            });
        }
        return Err(RefundRequestError::InProgress(active.id));
    }
    if !matches!(
        order.status,
        OrderStatus::Paid | OrderStatus::PartiallyRefunded
    ) {
        return Err(RefundRequestError::NotPaid(order.status.to_string()));
    }
    let not_refundable: Vec<Uuid> = lines
        .iter()
        .filter(|l| chosen.contains(&l.id) && l.status != LineStatus::AwaitingShipment)
        .map(|l| l.id)
        .collect();
    if !not_refundable.is_empty() {
        return Err(RefundRequestError::NotRefundable(not_refundable));
    }
    let amount = lines_total(&lines, &chosen);
    let payload = RefundPayload {
        order_id,
        line_ids: chosen,
        amount_cents: Some(amount),
        reason: if is_buyer {
            "requested_by_buyer"
        } else {
            "requested_by_seller"
        }
        .to_owned(),
    };
    let payload = serde_json::to_value(&payload).unwrap_or_default();
    let job = db::jobs::insert(
        &mut tx,
        &db::jobs::NewJob {
            kind: RefundOrder::NAME,
            owner_id: Some(user_id),
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

/// The lines a request refunds, checked against who asks.
fn choose_lines(
    lines: &[OrderLineRow],
    scope: &RefundScope,
    is_buyer: bool,
    user_id: Uuid,
) -> Result<Vec<Uuid>, RefundRequestError> {
    let ids = match scope {
        // A seller refunds their own lines only, so they name them.
        RefundScope::WholeOrder if !is_buyer => return Err(RefundRequestError::LinesRequired),
        RefundScope::WholeOrder => {
            if lines.iter().any(|l| l.status == LineStatus::Shipped) {
                return Err(RefundRequestError::Shipped);
            }
            // Lines refunded by an earlier partial refund are not refunded again.
            return Ok(lines
                .iter()
                .filter(|l| l.status == LineStatus::AwaitingShipment)
                .map(|l| l.id)
                .collect());
        }
        RefundScope::Lines(ids) => ids,
    };
    let unknown: Vec<Uuid> = ids
        .iter()
        .copied()
        .filter(|id| !lines.iter().any(|l| l.id == *id))
        .collect();
    if !unknown.is_empty() {
        return Err(RefundRequestError::UnknownLines(unknown));
    }
    if !is_buyer {
        let foreign: Vec<Uuid> = lines
            .iter()
            .filter(|l| ids.contains(&l.id) && l.seller_id != Some(user_id))
            .map(|l| l.id)
            .collect();
        if !foreign.is_empty() {
            return Err(RefundRequestError::NotSeller(foreign));
        }
    }
    Ok(ids.clone())
}

/// What the named lines cost. Each line is within the order's total, which is bounded, so the
/// checked sum cannot fail for a real order; it saturates rather than wraps if it ever did.
pub(super) fn lines_total(lines: &[OrderLineRow], ids: &[Uuid]) -> i64 {
    let totals = lines
        .iter()
        .filter(|l| ids.contains(&l.id))
        .map(|l| money::line_total(l.unit_price_cents, i64::from(l.quantity)).unwrap_or(i64::MAX));
    money::checked_sum(totals).unwrap_or(i64::MAX)
}
