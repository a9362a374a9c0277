//! The seller ledger: append-only money movements per order line. A seller's balance is the sum
//! of their entries. One entry of each kind per line (a unique constraint), so applying a payment
//! or a refund twice cannot move money twice.

use sqlx::PgConnection;
use uuid::Uuid;

use super::StoreError;

/// Credits the sellers of a paid order: per line a `sale` entry (+ unit price × quantity) and a
/// `platform_fee` entry (− the fee, `fee_bps` basis points of the sale, rounded down).
/// Idempotent: lines already credited are skipped.
#[tracing::instrument(skip_all, fields(order.id = %order_id))]
pub async fn credit_sale(
    conn: &mut PgConnection,
    order_id: Uuid,
    fee_bps: i64,
) -> Result<(), StoreError> {
    sqlx::query!(
        "INSERT INTO ledger_entries (id, seller_id, order_id, order_line_id, kind, amount_cents, currency)
         SELECT gen_random_uuid(), l.seller_id, l.order_id, l.id, k.kind,
                -- numeric, so no product can overflow; the fee rounds down like
                -- `domain::money::platform_fee`.
                CASE k.kind
                    WHEN 'sale' THEN (l.unit_price_cents::numeric * l.quantity)::bigint
                    ELSE -floor(l.unit_price_cents::numeric * l.quantity * $2 / 10000)::bigint
                END,
                l.currency
         FROM order_lines l CROSS JOIN (VALUES ('sale'), ('platform_fee')) AS k(kind)
         WHERE l.order_id = $1
         ON CONFLICT ON CONSTRAINT ledger_entries_line_kind_key DO NOTHING",
        order_id,
        // Bound as bigint, as before: the statement's own inference would make it numeric.
        fee_bps as i64
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Reverses the sale entries of refunded lines (`None`: every line of the order): a `refund`
/// entry (− the sale) and a `refund_fee_reversal` entry (+ the fee) for every line that was
/// credited, so those lines net to zero for their sellers. Idempotent.
#[tracing::instrument(skip_all, fields(order.id = %order_id))]
pub async fn reverse_sales(
    conn: &mut PgConnection,
    order_id: Uuid,
    line_ids: Option<&[Uuid]>,
) -> Result<(), StoreError> {
    sqlx::query!(
        "INSERT INTO ledger_entries (id, seller_id, order_id, order_line_id, kind, amount_cents, currency)
         SELECT gen_random_uuid(), e.seller_id, e.order_id, e.order_line_id,
                CASE e.kind WHEN 'sale' THEN 'refund' ELSE 'refund_fee_reversal' END,
                -e.amount_cents, e.currency
         FROM ledger_entries e
         WHERE e.order_id = $1 AND e.kind IN ('sale', 'platform_fee')
           AND ($2::uuid[] IS NULL OR e.order_line_id = ANY($2))
         ON CONFLICT ON CONSTRAINT ledger_entries_line_kind_key DO NOTHING",
        order_id,
        line_ids
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// A seller's balance per currency (sum of their entries).
#[tracing::instrument(skip_all, fields(user.id = %seller_id))]
pub async fn balance(
    conn: &mut PgConnection,
    seller_id: Uuid,
) -> Result<Vec<(String, i64)>, StoreError> {
    Ok(sqlx::query!(
        r#"SELECT currency, sum(amount_cents)::bigint AS "balance!" FROM ledger_entries
         WHERE seller_id = $1 GROUP BY currency ORDER BY currency"#,
        seller_id
    )
    .fetch_all(conn)
    .await?
    .into_iter()
    .map(|r| (r.currency, r.balance))
    .collect())
}
