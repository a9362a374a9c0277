//! What happens to an order after checkout: payment, refunds, expiry claims and shipments.
//!
//! Every function that changes stock expects the order row to be locked by the caller's
//! transaction (or locks it with its own conditional UPDATE) and then locks the order's
//! listings in id order, like checkout and `orders::close_pending`, so these transactions can
//! never deadlock with each other.

use std::time::Duration;

use sqlx::PgConnection;
use uuid::Uuid;

use super::{StoreError, ledger, orders::OrderRow};
use crate::domain::{LineStatus, OrderStatus};

/// Locks the listings of an order's lines, in id order.
async fn lock_listings_of(conn: &mut PgConnection, order_id: Uuid) -> Result<(), StoreError> {
    // The rows are dropped: only their locks matter.
    sqlx::query!(
        "SELECT l.id FROM listings l
         WHERE l.id IN (SELECT listing_id FROM order_lines WHERE order_id = $1)
         ORDER BY l.id FOR UPDATE",
        order_id
    )
    .fetch_all(conn)
    .await?;
    Ok(())
}

/// Marks a pending order `paid`: its lines await shipment, the sold units leave both
/// `quantity` and `reserved` (so the stock gate's "available" is unchanged), the sellers are
/// credited (`fee_bps` platform fee, rounded like [`ledger::credit_sale`]) and the webhook
/// event `event_id` that brought the payment, if any, is marked processed: one statement, so
/// one round trip and its own transaction. The order's row is locked by its conditional UPDATE
/// first, then its listings in id order (the `locked` step, which the stock update reads), as
/// everywhere else. `count_delivery` also counts the event's delivery (`attempts`), for a
/// delivery that did not claim the event first. `false` when the order was not pending;
/// nothing changed then.
#[tracing::instrument(skip_all, fields(order.id = %order_id))]
pub async fn mark_paid(
    conn: &mut PgConnection,
    order_id: Uuid,
    fee_bps: i64,
    event_id: Option<&str>,
    count_delivery: bool,
) -> Result<bool, StoreError> {
    let paid = sqlx::query_scalar!(
        r#"WITH paid AS (
             UPDATE orders SET status = $2, paid_at = now()
             WHERE id = $1 AND status = 'pending_payment'
             RETURNING id),
         units AS (
             SELECT listing_id, sum(quantity)::int AS quantity FROM order_lines
             WHERE order_id = $1 AND listing_id IS NOT NULL AND EXISTS (SELECT 1 FROM paid)
             GROUP BY listing_id),
         locked AS (
             SELECT l.id FROM listings l JOIN units u ON u.listing_id = l.id
             ORDER BY l.id FOR UPDATE OF l),
         sold AS (
             UPDATE listings l SET quantity = l.quantity - u.quantity, reserved = l.reserved - u.quantity
             FROM units u JOIN locked k ON k.id = u.listing_id
             WHERE l.id = u.listing_id),
         shipped AS (
             UPDATE order_lines SET status = $3
             WHERE order_id = $1 AND EXISTS (SELECT 1 FROM paid)),
         credited AS (
             INSERT INTO ledger_entries (id, seller_id, order_id, order_line_id, kind, amount_cents, currency)
             SELECT gen_random_uuid(), l.seller_id, l.order_id, l.id, k.kind,
                    -- numeric, so no product can overflow; the fee rounds down like
                    -- `domain::money::platform_fee`.
                    CASE k.kind
                        WHEN 'sale' THEN (l.unit_price_cents::numeric * l.quantity)::bigint
                        ELSE -floor(l.unit_price_cents::numeric * l.quantity * $4 / 10000)::bigint
                    END,
                    l.currency
             FROM order_lines l CROSS JOIN (VALUES ('sale'), ('platform_fee')) AS k(kind)
             WHERE l.order_id = $1 AND EXISTS (SELECT 1 FROM paid)
             ON CONFLICT ON CONSTRAINT ledger_entries_line_kind_key DO NOTHING),
         processed AS (
             UPDATE webhook_events SET processed_at = now(), error = NULL,
                    attempts = attempts + CASE WHEN $6 THEN 1 ELSE 0 END
             WHERE id = $5 AND EXISTS (SELECT 1 FROM paid))
         SELECT count(*) AS "paid!" FROM paid"#,
        order_id,
        OrderStatus::Paid as OrderStatus,
        LineStatus::AwaitingShipment as LineStatus,
        // Bound as bigint, as before: the statement's own inference would make it numeric.
        fee_bps as i64,
        event_id,
        count_delivery
    )
    .fetch_one(conn)
    .await?;
    Ok(paid == 1)
}

/// Records the automatic refund of a payment that arrived after the order was closed
/// (`expired` or `cancelled`): the order ends `refunded` with reason `late_payment_refunded`.
/// Its stock was released when it closed, so no unit moves. The ledger gets the sale and its
/// reversal, so the money is traceable and nets to zero for the sellers. `false` when the order
/// was not closed.
#[tracing::instrument(skip_all, fields(order.id = %order_id))]
pub async fn record_late_refund(
    conn: &mut PgConnection,
    order_id: Uuid,
    refund_id: Option<&str>,
    fee_bps: i64,
) -> Result<bool, StoreError> {
    let refunded = sqlx::query!(
        "WITH closed AS (
             UPDATE orders SET status = $3, status_reason = 'late_payment_refunded',
                    refund_id = $2, refunded_cents = total_cents,
                    closed_at = coalesce(closed_at, now())
             WHERE id = $1 AND status IN ('expired', 'cancelled')
             RETURNING id, total_cents, currency)
         INSERT INTO order_refunds (id, order_id, stripe_refund_id, amount_cents, currency, reason)
         SELECT gen_random_uuid(), id, $2, total_cents, currency, 'late_payment' FROM closed
         WHERE total_cents > 0",
        order_id,
        refund_id,
        OrderStatus::Refunded as OrderStatus
    )
    .execute(&mut *conn)
    .await?;
    if refunded.rows_affected() == 0 {
        return Ok(false);
    }
    ledger::credit_sale(conn, order_id, fee_bps).await?;
    ledger::reverse_sales(conn, order_id, None).await?;
    Ok(true)
}

/// Marks the order's lines that await shipment (`None`: all of them; else those named) as
/// `refunded` and puts their units back in stock (`quantity += n`, listings locked in id order).
/// Returns the restocked (listing, units) pairs.
pub(crate) async fn refund_awaiting_lines(
    conn: &mut PgConnection,
    order_id: Uuid,
    line_ids: Option<&[Uuid]>,
) -> Result<Vec<(Uuid, i32)>, StoreError> {
    lock_listings_of(conn, order_id).await?;
    Ok(sqlx::query!(
        r#"WITH lines AS (
             UPDATE order_lines SET status = $3
             WHERE order_id = $1 AND status = 'awaiting_shipment'
               AND ($2::uuid[] IS NULL OR id = ANY($2))
             RETURNING listing_id, quantity),
         units AS (
             SELECT listing_id, sum(quantity)::int AS quantity FROM lines
             WHERE listing_id IS NOT NULL GROUP BY listing_id)
         UPDATE listings l SET quantity = l.quantity + u.quantity
         FROM units u WHERE l.id = u.listing_id
         RETURNING l.id, u.quantity AS "quantity!""#,
        order_id,
        line_ids,
        LineStatus::Refunded as LineStatus
    )
    .fetch_all(conn)
    .await?
    .into_iter()
    .map(|r| (r.id, r.quantity))
    .collect())
}

/// One refund of lines of a paid order, as the refund job records it.
#[derive(Debug, Clone)]
pub struct LineRefund<'a> {
    /// The order.
    pub order_id: Uuid,
    /// The job that made it.
    pub job_id: Uuid,
    /// The lines refunded.
    pub line_ids: &'a [Uuid],
    /// Their total: the money sent back.
    pub amount_cents: i64,
    /// The order's currency.
    pub currency: &'a str,
    /// Stripe's refund id (`None` when Stripe said the charge was refunded already).
    pub stripe_refund_id: Option<&'a str>,
    /// `requested_by_buyer` or `requested_by_seller`.
    pub reason: &'a str,
}

/// What [`refund_lines`] changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefundedLines {
    /// The (listing, units) pairs put back in stock.
    pub restocked: Vec<(Uuid, i32)>,
    /// The order's status afterwards: `refunded` once every line is, else
    /// `partially_refunded`.
    pub order_status: OrderStatus,
}

/// Refunds lines of a paid order in the caller's transaction: the lines that still await
/// shipment become `refunded`, their units go back in stock (`quantity += n`), their sellers'
/// credit is reversed, the refund is recorded, and the order's `refunded_cents` grows by the
/// amount (the database refuses more than its total). The order ends `refunded` (reason
/// `refunded_by_buyer` or `refunded_by_seller`) when no line is left unrefunded, else
/// `partially_refunded`.
#[tracing::instrument(skip_all, fields(order.id = %refund.order_id))]
pub async fn refund_lines(
    conn: &mut PgConnection,
    refund: &LineRefund<'_>,
) -> Result<RefundedLines, StoreError> {
    let restocked = refund_awaiting_lines(conn, refund.order_id, Some(refund.line_ids)).await?;
    ledger::reverse_sales(conn, refund.order_id, Some(refund.line_ids)).await?;
    sqlx::query!(
        "INSERT INTO order_refunds (id, order_id, stripe_refund_id, job_id, amount_cents, currency,
                                    line_ids, reason)
         VALUES (gen_random_uuid(), $1, $2, $3, $4, $5, $6, $7)",
        refund.order_id,
        refund.stripe_refund_id,
        refund.job_id,
        refund.amount_cents,
        refund.currency,
        refund.line_ids,
        refund.reason
    )
    .execute(&mut *conn)
    .await?;
    let order_status = sqlx::query_scalar!(
        r#"UPDATE orders o SET refunded_cents = o.refunded_cents + $2,
                status = CASE WHEN left_over.n = 0 THEN $5 ELSE $6 END,
                status_reason = CASE WHEN left_over.n = 0
                                     THEN replace($3, 'requested_by', 'refunded_by')
                                     ELSE o.status_reason END,
                closed_at = CASE WHEN left_over.n = 0 THEN now() ELSE o.closed_at END,
                refund_id = coalesce($4, o.refund_id)
         FROM (SELECT count(*) AS n FROM order_lines
               WHERE order_id = $1 AND status <> 'refunded') AS left_over
         WHERE o.id = $1
         RETURNING o.status AS "status: OrderStatus""#,
        refund.order_id,
        refund.amount_cents,
        refund.reason,
        refund.stripe_refund_id,
        OrderStatus::Refunded as OrderStatus,
        OrderStatus::PartiallyRefunded as OrderStatus
    )
    .fetch_one(&mut *conn)
    .await?;
    Ok(RefundedLines {
        restocked,
        order_status,
    })
}

/// Claims up to `limit` pending orders past their deadline for one expiry run, for `lease`:
/// concurrent runs skip rows another run has locked or claimed, so each order is handled by
/// one run. Returns the orders, oldest deadline first.
#[tracing::instrument(skip_all)]
pub async fn claim_expired(
    conn: &mut PgConnection,
    limit: i64,
    lease: Duration,
) -> Result<Vec<OrderRow>, StoreError> {
    let mut claimed: Vec<OrderRow> = sqlx::query_as!(
        OrderRow,
        r#"UPDATE orders o SET expiry_claimed_until = now() + make_interval(secs => $2)
         WHERE o.id IN (
             SELECT id FROM orders
             WHERE status = 'pending_payment' AND expires_at < now()
               AND (expiry_claimed_until IS NULL OR expiry_claimed_until < now())
             ORDER BY expires_at LIMIT $1
             FOR UPDATE SKIP LOCKED)
         RETURNING id, buyer_id, buyer_username, status AS "status: OrderStatus", status_reason,
                   total_cents, refunded_cents, currency, shipping_address, payment_intent_id,
                   client_secret, checkout_job_id, expires_at, created_at, updated_at"#,
        limit,
        lease.as_secs_f64()
    )
    .fetch_all(conn)
    .await?;
    claimed.sort_by_key(|o| o.expires_at);
    Ok(claimed)
}

/// A settled order and what its ledger says it netted.
#[derive(Debug, Clone)]
pub struct SettledOrder {
    /// The order.
    pub order: OrderRow,
    /// The sum of its money entries: sales, refunds and refunds made in Stripe (not fees or
    /// dispute holds).
    pub ledger_gross: i64,
}

/// Orders that are paid, partly or fully refunded and changed within `window`, newest first,
/// with their ledger's gross.
#[tracing::instrument(skip_all)]
pub async fn settled_since(
    conn: &mut PgConnection,
    window: Duration,
    limit: i64,
) -> Result<Vec<SettledOrder>, StoreError> {
    let rows: Vec<(Uuid, i64)> = sqlx::query!(
        r#"SELECT o.id, coalesce((
                    SELECT sum(e.amount_cents) FROM ledger_entries e
                    WHERE e.order_id = o.id
                      AND e.kind IN ('sale', 'refund', 'outside_refund', 'outside_refund_reversal')
                ), 0)::bigint AS "ledger_gross!"
         FROM orders o
         WHERE o.status IN ('paid', 'partially_refunded', 'refunded')
           AND o.updated_at > now() - make_interval(secs => $1)
         ORDER BY o.updated_at DESC LIMIT $2"#,
        window.as_secs_f64(),
        limit
    )
    .fetch_all(&mut *conn)
    .await?
    .into_iter()
    .map(|r| (r.id, r.ledger_gross))
    .collect();
    let ids: Vec<Uuid> = rows.iter().map(|(id, _)| *id).collect();
    let orders: Vec<OrderRow> = sqlx::query_as!(
        OrderRow,
        r#"SELECT id, buyer_id, buyer_username, status AS "status: OrderStatus", status_reason,
                  total_cents, refunded_cents, currency, shipping_address, payment_intent_id,
                  client_secret, checkout_job_id, expires_at, created_at, updated_at
           FROM orders WHERE id = ANY($1)"#,
        &ids
    )
    .fetch_all(conn)
    .await?;
    Ok(rows
        .into_iter()
        .filter_map(|(id, ledger_gross)| {
            let order = orders.iter().find(|o| o.id == id)?.clone();
            Some(SettledOrder {
                order,
                ledger_gross,
            })
        })
        .collect())
}

/// A queued or running `refund_order` job and the lines it refunds (empty: every line).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ActiveRefund {
    /// The job.
    pub id: Uuid,
    /// Its lines, sorted.
    pub line_ids: Vec<Uuid>,
}

/// The queued or running `refund_order` job of an order, if any.
#[tracing::instrument(skip_all, fields(order.id = %order_id))]
pub async fn active_refund_job(
    conn: &mut PgConnection,
    order_id: Uuid,
) -> Result<Option<ActiveRefund>, StoreError> {
    Ok(sqlx::query_as!(
        ActiveRefund,
        r#"SELECT id, coalesce(ARRAY(SELECT jsonb_array_elements_text(payload->'line_ids')::uuid),
                             '{}') AS "line_ids!"
         FROM jobs
         WHERE kind = 'refund_order' AND status IN ('queued', 'running')
           AND payload->>'order_id' = $1
         ORDER BY id LIMIT 1"#,
        order_id.to_string()
    )
    .fetch_optional(conn)
    .await?)
}

/// Marks lines of an order `shipped` with a tracking code; only lines awaiting shipment change.
/// Returns how many did.
#[tracing::instrument(skip_all, fields(order.id = %order_id))]
pub async fn ship_lines(
    conn: &mut PgConnection,
    order_id: Uuid,
    line_ids: &[Uuid],
    tracking_code: &str,
) -> Result<u64, StoreError> {
    Ok(sqlx::query!(
        "UPDATE order_lines SET status = $4, tracking_code = $3, shipped_at = now()
         WHERE order_id = $1 AND id = ANY($2) AND status = 'awaiting_shipment'",
        order_id,
        line_ids,
        tracking_code,
        LineStatus::Shipped as LineStatus
    )
    .execute(conn)
    .await?
    .rows_affected())
}
