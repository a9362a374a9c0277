//! Orders and their snapshot lines.

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::PgConnection;
use uuid::Uuid;

use super::StoreError;
use crate::domain::{LineStatus, OrderStatus};

/// An order row.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct OrderRow {
    /// UUIDv7.
    pub id: Uuid,
    /// Buyer (None once the account is purged).
    pub buyer_id: Option<Uuid>,
    /// Buyer's username at checkout.
    pub buyer_username: String,
    /// Where the order is.
    pub status: OrderStatus,
    /// Why the order left `pending_payment` other than by payment.
    pub status_reason: Option<String>,
    /// Sum of the lines.
    pub total_cents: i64,
    /// Money refunded so far (never more than `total_cents`).
    pub refunded_cents: i64,
    /// Lowercase ISO currency.
    pub currency: String,
    /// Address snapshot.
    pub shipping_address: Value,
    /// Stripe PaymentIntent id.
    pub payment_intent_id: Option<String>,
    /// Secret the SPA confirms the payment with.
    pub client_secret: Option<String>,
    /// The checkout job that created it.
    pub checkout_job_id: Option<Uuid>,
    /// Reservation deadline.
    pub expires_at: DateTime<Utc>,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

/// An order line snapshot.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct OrderLineRow {
    /// UUIDv7.
    pub id: Uuid,
    /// Parent order.
    pub order_id: Uuid,
    /// The listing (None once purged).
    pub listing_id: Option<Uuid>,
    /// Seller (None once purged).
    pub seller_id: Option<Uuid>,
    /// Seller's username at checkout.
    pub seller_username: String,
    /// Title at checkout.
    pub title: String,
    /// Unit price at checkout.
    pub unit_price_cents: i64,
    /// Currency at checkout.
    pub currency: String,
    /// Units bought.
    pub quantity: i32,
    /// Where the line is.
    pub status: LineStatus,
    /// Carrier tracking code once shipped.
    pub tracking_code: Option<String>,
    /// Object-store key of the main image's thumbnail at checkout.
    pub image_key: Option<String>,
}

/// An order by id.
#[tracing::instrument(skip_all, fields(order.id = %id))]
pub async fn find(conn: &mut PgConnection, id: Uuid) -> Result<Option<OrderRow>, StoreError> {
    Ok(sqlx::query_as!(
        OrderRow,
        r#"SELECT id, buyer_id, buyer_username, status AS "status: OrderStatus", status_reason,
                  total_cents, refunded_cents, currency, shipping_address, payment_intent_id,
                  client_secret, checkout_job_id, expires_at, created_at, updated_at
           FROM orders WHERE id = $1"#,
        id
    )
    .fetch_optional(conn)
    .await?)
}

/// An order by id, row-locked for a state change.
#[tracing::instrument(skip_all, fields(order.id = %id))]
pub async fn lock(conn: &mut PgConnection, id: Uuid) -> Result<Option<OrderRow>, StoreError> {
    Ok(sqlx::query_as!(
        OrderRow,
        r#"SELECT id, buyer_id, buyer_username, status AS "status: OrderStatus", status_reason,
                  total_cents, refunded_cents, currency, shipping_address, payment_intent_id,
                  client_secret, checkout_job_id, expires_at, created_at, updated_at
           FROM orders WHERE id = $1 FOR UPDATE"#,
        id
    )
    .fetch_optional(conn)
    .await?)
}

/// The order a checkout job created, if it got that far.
#[tracing::instrument(skip_all, fields(job.id = %job_id))]
pub async fn find_by_checkout_job(
    conn: &mut PgConnection,
    job_id: Uuid,
) -> Result<Option<OrderRow>, StoreError> {
    Ok(sqlx::query_as!(
        OrderRow,
        r#"SELECT id, buyer_id, buyer_username, status AS "status: OrderStatus", status_reason,
                  total_cents, refunded_cents, currency, shipping_address, payment_intent_id,
                  client_secret, checkout_job_id, expires_at, created_at, updated_at
           FROM orders WHERE checkout_job_id = $1"#,
        job_id
    )
    .fetch_optional(conn)
    .await?)
}

/// The order paid through PaymentIntent `intent_id`.
#[tracing::instrument(skip_all)]
pub async fn find_by_payment_intent(
    conn: &mut PgConnection,
    intent_id: &str,
) -> Result<Option<OrderRow>, StoreError> {
    Ok(sqlx::query_as!(
        OrderRow,
        r#"SELECT id, buyer_id, buyer_username, status AS "status: OrderStatus", status_reason,
                  total_cents, refunded_cents, currency, shipping_address, payment_intent_id,
                  client_secret, checkout_job_id, expires_at, created_at, updated_at
           FROM orders WHERE payment_intent_id = $1"#,
        intent_id
    )
    .fetch_optional(conn)
    .await?)
}

/// Replaces the PaymentIntent of a pending order (`spent` must still be its intent), so a new
/// payment can be made. `false` when the order moved on meanwhile.
#[tracing::instrument(skip_all, fields(order.id = %order_id))]
pub async fn replace_intent(
    conn: &mut PgConnection,
    order_id: Uuid,
    spent: &str,
    fresh: &str,
    client_secret: Option<&str>,
) -> Result<bool, StoreError> {
    Ok(sqlx::query!(
        "UPDATE orders SET payment_intent_id = $3, client_secret = $4
         WHERE id = $1 AND payment_intent_id = $2 AND status = 'pending_payment'",
        order_id,
        spent,
        fresh,
        client_secret
    )
    .execute(conn)
    .await?
    .rows_affected()
        == 1)
}

/// Lines of the given orders, ordered by order then line id. `seller` limits them to one
/// seller's lines.
#[tracing::instrument(skip_all)]
pub async fn lines(
    conn: &mut PgConnection,
    order_ids: &[Uuid],
    seller: Option<Uuid>,
) -> Result<Vec<OrderLineRow>, StoreError> {
    Ok(sqlx::query_as!(
        OrderLineRow,
        r#"SELECT id, order_id, listing_id, seller_id, seller_username, title, unit_price_cents, currency,
                quantity, status AS "status: LineStatus", tracking_code, image_key
         FROM order_lines
         WHERE order_id = ANY($1) AND ($2::uuid IS NULL OR seller_id = $2)
         ORDER BY order_id, id"#,
        order_ids,
        seller
    )
    .fetch_all(conn)
    .await?)
}

/// Whose orders to list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrderRole {
    /// Orders the user placed.
    Buyer,
    /// Orders with at least one line the user sells.
    Seller,
}

/// A page of the user's orders, newest first, keyset-paginated on the (time-ordered) id.
#[tracing::instrument(skip_all, fields(user.id = %user_id))]
pub async fn list(
    conn: &mut PgConnection,
    user_id: Uuid,
    role: OrderRole,
    before: Option<Uuid>,
    limit: i64,
) -> Result<(Vec<OrderRow>, bool), StoreError> {
    // One statement per role, so each keeps its own plan.
    let mut rows: Vec<OrderRow> = match role {
        OrderRole::Buyer => {
            sqlx::query_as!(
                OrderRow,
                r#"SELECT id, buyer_id, buyer_username, status AS "status: OrderStatus", status_reason,
                          total_cents, refunded_cents, currency, shipping_address, payment_intent_id,
                          client_secret, checkout_job_id, expires_at, created_at, updated_at
                   FROM orders o
                   WHERE o.buyer_id = $1 AND ($2::uuid IS NULL OR o.id < $2)
                   ORDER BY o.id DESC LIMIT $3"#,
                user_id,
                before,
                limit + 1
            )
            .fetch_all(conn)
            .await?
        }
        OrderRole::Seller => {
            sqlx::query_as!(
                OrderRow,
                r#"SELECT id, buyer_id, buyer_username, status AS "status: OrderStatus", status_reason,
                          total_cents, refunded_cents, currency, shipping_address, payment_intent_id,
                          client_secret, checkout_job_id, expires_at, created_at, updated_at
                   FROM orders o
                   WHERE EXISTS (SELECT 1 FROM order_lines ol WHERE ol.order_id = o.id AND ol.seller_id = $1)
                     AND ($2::uuid IS NULL OR o.id < $2)
                   ORDER BY o.id DESC LIMIT $3"#,
                user_id,
                before,
                limit + 1
            )
            .fetch_all(conn)
            .await?
        }
    };
    let more = rows.len() as i64 > limit;
    rows.truncate(limit as usize);
    Ok((rows, more))
}

/// Whether `user_id` sells at least one line of the order.
#[tracing::instrument(skip_all)]
pub async fn is_seller_of(
    conn: &mut PgConnection,
    order_id: Uuid,
    user_id: Uuid,
) -> Result<bool, StoreError> {
    Ok(sqlx::query_scalar!(
        r#"SELECT EXISTS (SELECT 1 FROM order_lines WHERE order_id = $1 AND seller_id = $2) AS "exists!""#,
        order_id,
        user_id
    )
    .fetch_one(conn)
    .await?)
}

/// Closes a pending order (`cancelled` or `expired`) and releases its reserved units, in the
/// caller's transaction. Returns the released (listing, units) pairs, or `None` if the order was
/// not pending (someone else closed or paid it first).
#[tracing::instrument(skip_all, fields(order.id = %id))]
pub async fn close_pending(
    conn: &mut PgConnection,
    id: Uuid,
    status: OrderStatus,
    reason: &str,
) -> Result<Option<Vec<(Uuid, i32)>>, StoreError> {
    let closed = sqlx::query!(
        "UPDATE orders SET status = $2, status_reason = $3, closed_at = now()
         WHERE id = $1 AND status = 'pending_payment'",
        id,
        status as OrderStatus,
        reason
    )
    .execute(&mut *conn)
    .await?;
    if closed.rows_affected() == 0 {
        return Ok(None);
    }
    // Lock the listings in id order, like checkout, so the two cannot deadlock.
    // The rows are dropped: only their locks matter.
    sqlx::query!(
        "SELECT l.id FROM listings l
         WHERE l.id IN (SELECT listing_id FROM order_lines WHERE order_id = $1)
         ORDER BY l.id FOR UPDATE",
        id
    )
    .fetch_all(&mut *conn)
    .await?;
    let released: Vec<(Uuid, i32)> = sqlx::query!(
        r#"WITH units AS (
             SELECT listing_id, sum(quantity)::int AS quantity FROM order_lines
             WHERE order_id = $1 AND listing_id IS NOT NULL GROUP BY listing_id)
         UPDATE listings l SET reserved = l.reserved - u.quantity
         FROM units u WHERE l.id = u.listing_id
         RETURNING l.id, u.quantity AS "quantity!""#,
        id
    )
    .fetch_all(&mut *conn)
    .await?
    .into_iter()
    .map(|r| (r.id, r.quantity))
    .collect();
    sqlx::query!(
        "UPDATE order_lines SET status = $2 WHERE order_id = $1",
        id,
        LineStatus::Cancelled as LineStatus
    )
    .execute(conn)
    .await?;
    Ok(Some(released))
}
