//! Money moved in Stripe without us (dashboard refunds, disputes), as it reaches orders, lines
//! and the ledger. Every function runs in the caller's transaction with the order row locked.

use sqlx::PgConnection;
use uuid::Uuid;

use super::{StoreError, ledger, orders::OrderRow};
use crate::domain::OrderStatus;

/// Records `delta` more refunded by Stripe for `order`. A `full` refund (the whole charge is
/// refunded now) ends the order `refunded` (reason `refunded_outside`): lines awaiting shipment
/// become `refunded` with their units back in stock, every line's sale and fee are reversed and
/// earlier unattributed refunds are cancelled, so the order nets to zero. A partial one is an
/// unattributed `outside_refund` entry and the order becomes `partially_refunded`. Returns the
/// restocked (listing, units) pairs.
#[tracing::instrument(skip_all, fields(order.id = %order.id))]
pub async fn record_refund(
    conn: &mut PgConnection,
    order: &OrderRow,
    delta: i64,
    full: bool,
) -> Result<Vec<(Uuid, i32)>, StoreError> {
    sqlx::query!(
        "INSERT INTO order_refunds (id, order_id, amount_cents, currency, reason)
         VALUES (gen_random_uuid(), $1, $2, $3, 'outside')",
        order.id,
        delta,
        &order.currency
    )
    .execute(&mut *conn)
    .await?;
    if !full {
        // `$2::bigint`: the type it is bound with, spelled out for the compile-time check.
        sqlx::query!(
            "WITH entry AS (
                 INSERT INTO ledger_entries (id, order_id, kind, amount_cents, currency)
                 VALUES (gen_random_uuid(), $1, 'outside_refund', -$2::bigint, $3))
             UPDATE orders SET refunded_cents = refunded_cents + $2, status = $4
             WHERE id = $1",
            order.id,
            delta,
            &order.currency,
            OrderStatus::PartiallyRefunded as OrderStatus
        )
        .execute(&mut *conn)
        .await?;
        return Ok(Vec::new());
    }
    let restocked = super::settlement::refund_awaiting_lines(conn, order.id, None).await?;
    ledger::reverse_sales(conn, order.id, None).await?;
    sqlx::query!(
        "WITH earlier AS (
             SELECT coalesce(sum(amount_cents), 0)::bigint AS amount FROM ledger_entries
             WHERE order_id = $1 AND kind IN ('outside_refund', 'outside_refund_reversal')),
         reversal AS (
             INSERT INTO ledger_entries (id, order_id, kind, amount_cents, currency)
             SELECT gen_random_uuid(), $1, 'outside_refund_reversal', -amount, $2 FROM earlier
             WHERE amount <> 0)
         UPDATE orders SET refunded_cents = total_cents, status = $3,
                status_reason = 'refunded_outside', closed_at = coalesce(closed_at, now())
         WHERE id = $1",
        order.id,
        &order.currency,
        OrderStatus::Refunded as OrderStatus
    )
    .execute(&mut *conn)
    .await?;
    Ok(restocked)
}

/// A dispute as one event reports it.
#[derive(Debug, Clone)]
pub struct Dispute<'a> {
    /// Stripe's dispute id (`dp_…`).
    pub id: &'a str,
    /// The disputed order.
    pub order_id: Uuid,
    /// The disputed amount.
    pub amount_cents: i64,
    /// Its currency.
    pub currency: &'a str,
    /// Stripe's status in this event.
    pub status: &'a str,
    /// Stripe's reason (`fraudulent`, …).
    pub reason: Option<&'a str>,
}

/// Records a dispute event and returns the dispute's status afterwards: a closed dispute (won,
/// lost, warning closed) keeps its outcome, so a late or repeated earlier event cannot reopen it.
#[tracing::instrument(skip_all, fields(order.id = %dispute.order_id))]
pub async fn upsert_dispute(
    conn: &mut PgConnection,
    dispute: &Dispute<'_>,
) -> Result<String, StoreError> {
    Ok(sqlx::query_scalar!(
        "INSERT INTO payment_disputes (id, order_id, amount_cents, currency, status, reason, closed_at)
         VALUES ($1, $2, $3, $4, $5, $6,
                 CASE WHEN $5 IN ('won', 'lost', 'warning_closed') THEN now() END)
         ON CONFLICT (id) DO UPDATE
         SET status = CASE WHEN payment_disputes.closed_at IS NULL THEN EXCLUDED.status
                           ELSE payment_disputes.status END,
             closed_at = coalesce(payment_disputes.closed_at, EXCLUDED.closed_at)
         RETURNING status",
        dispute.id,
        dispute.order_id,
        dispute.amount_cents,
        dispute.currency,
        dispute.status,
        dispute.reason
    )
    .fetch_one(conn)
    .await?)
}

/// Holds each line's net credit (sale − fee − refunds so far) while its charge is disputed: a
/// `dispute_hold` entry of minus that net, once per line.
#[tracing::instrument(skip_all, fields(order.id = %order_id))]
pub async fn hold_for_dispute(conn: &mut PgConnection, order_id: Uuid) -> Result<(), StoreError> {
    sqlx::query!(
        "INSERT INTO ledger_entries (id, seller_id, order_id, order_line_id, kind, amount_cents, currency)
         SELECT gen_random_uuid(), min(e.seller_id::text)::uuid, e.order_id, e.order_line_id,
                'dispute_hold', -sum(e.amount_cents), min(e.currency)
         FROM ledger_entries e
         WHERE e.order_id = $1 AND e.order_line_id IS NOT NULL
           AND e.kind IN ('sale', 'platform_fee', 'refund', 'refund_fee_reversal')
         GROUP BY e.order_id, e.order_line_id
         HAVING sum(e.amount_cents) > 0
         ON CONFLICT ON CONSTRAINT ledger_entries_line_kind_key DO NOTHING",
        order_id
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Gives the holds of a won dispute back: a `dispute_release` entry cancelling each line's
/// `dispute_hold`, once per line.
#[tracing::instrument(skip_all, fields(order.id = %order_id))]
pub async fn release_dispute_hold(
    conn: &mut PgConnection,
    order_id: Uuid,
) -> Result<(), StoreError> {
    sqlx::query!(
        "INSERT INTO ledger_entries (id, seller_id, order_id, order_line_id, kind, amount_cents, currency)
         SELECT gen_random_uuid(), e.seller_id, e.order_id, e.order_line_id, 'dispute_release',
                -e.amount_cents, e.currency
         FROM ledger_entries e
         WHERE e.order_id = $1 AND e.kind = 'dispute_hold'
         ON CONFLICT ON CONSTRAINT ledger_entries_line_kind_key DO NOTHING",
        order_id
    )
    .execute(conn)
    .await?;
    Ok(())
}
