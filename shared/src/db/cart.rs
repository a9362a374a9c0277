//! Cart lines: one line per listing per buyer.

use sqlx::PgConnection;
use uuid::Uuid;

use super::StoreError;

/// A cart line joined with the listing's current state.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct CartLineRow {
    /// The listing in the cart.
    pub listing_id: Uuid,
    /// Current title.
    pub title: String,
    /// Current unit price.
    pub unit_price_cents: i64,
    /// Currency of the price.
    pub currency: String,
    /// Units wanted.
    pub quantity: i32,
    /// Units a buyer can take now (0 when the listing is inactive).
    pub available: i32,
}

impl CartLineRow {
    /// Unit price × quantity, saturating: only a line written before the money limits existed
    /// can reach `i64::MAX`, and checkout refuses such a cart (`MoneyLimits::order_total`).
    pub fn line_total_cents(&self) -> i64 {
        crate::domain::money::line_total(self.unit_price_cents, i64::from(self.quantity))
            .unwrap_or(i64::MAX)
    }
}

/// A cart line as checkout admission needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckoutCartLine {
    /// The listing.
    pub listing_id: Uuid,
    /// Units wanted.
    pub quantity: i32,
    /// The listing's seller.
    pub seller_id: Uuid,
    /// Whether the listing is for sale.
    pub is_active: bool,
    /// Its current unit price.
    pub price_cents: i64,
    /// Its currency.
    pub currency: String,
}

/// What checkout admission reads about a buyer in one round trip: the cart (sorted by listing
/// id), a checkout job still queued or running, and the orders awaiting payment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckoutCart {
    /// The cart lines.
    pub lines: Vec<CheckoutCartLine>,
    /// An active `checkout` job of the buyer, if any.
    pub active_job: Option<Uuid>,
    /// Orders of the buyer awaiting payment.
    pub unpaid_orders: i64,
}

#[derive(sqlx::FromRow)]
struct CheckoutCartRow {
    active_job: Option<Uuid>,
    unpaid_orders: i64,
    listing_id: Option<Uuid>,
    quantity: Option<i32>,
    seller_id: Option<Uuid>,
    is_active: Option<bool>,
    price_cents: Option<i64>,
    currency: Option<String>,
}

/// The buyer's cart and open checkouts, see [`CheckoutCart`]. Always one row at least (the
/// open checkouts), with the cart's columns empty when the cart is.
#[tracing::instrument(skip_all, fields(user.id = %user_id))]
pub async fn for_checkout(
    conn: &mut PgConnection,
    user_id: Uuid,
) -> Result<CheckoutCart, StoreError> {
    let rows: Vec<CheckoutCartRow> = sqlx::query_as!(
        CheckoutCartRow,
        r#"SELECT o.active_job AS "active_job?", o.unpaid_orders AS "unpaid_orders!",
                c.listing_id AS "listing_id?", c.quantity AS "quantity?", l.seller_id AS "seller_id?",
                l.is_active AS "is_active?", l.price_cents AS "price_cents?", l.currency AS "currency?"
         FROM (SELECT (SELECT id FROM jobs
                       WHERE owner_id = $1 AND kind = 'checkout' AND status IN ('queued', 'running')
                       ORDER BY id LIMIT 1) AS active_job,
                      (SELECT count(*) FROM orders
                       WHERE buyer_id = $1 AND status = 'pending_payment') AS unpaid_orders) o
         LEFT JOIN (cart_lines c JOIN listings l ON l.id = c.listing_id) ON c.user_id = $1
         ORDER BY c.listing_id"#,
        user_id
    )
    .fetch_all(conn)
    .await?;
    let (active_job, unpaid_orders) = rows
        .first()
        .map_or((None, 0), |r| (r.active_job, r.unpaid_orders));
    let lines = rows
        .into_iter()
        .filter_map(|r| {
            Some(CheckoutCartLine {
                listing_id: r.listing_id?,
                quantity: r.quantity?,
                seller_id: r.seller_id?,
                is_active: r.is_active?,
                price_cents: r.price_cents?,
                currency: r.currency?,
            })
        })
        .collect();
    Ok(CheckoutCart {
        lines,
        active_job,
        unpaid_orders,
    })
}

/// The buyer's cart lines, oldest first.
#[tracing::instrument(skip_all, fields(user.id = %user_id))]
pub async fn lines(conn: &mut PgConnection, user_id: Uuid) -> Result<Vec<CartLineRow>, StoreError> {
    Ok(sqlx::query_as!(
        CartLineRow,
        r#"SELECT c.listing_id, l.title, l.price_cents AS unit_price_cents, l.currency, c.quantity,
                CASE WHEN l.is_active THEN l.quantity - l.reserved ELSE 0 END AS "available!"
         FROM cart_lines c JOIN listings l ON l.id = c.listing_id
         WHERE c.user_id = $1
         ORDER BY c.created_at, c.listing_id"#,
        user_id
    )
    .fetch_all(conn)
    .await?)
}

/// Sets the quantity of a listing in the cart, creating the cart and line as needed.
#[tracing::instrument(skip_all, fields(user.id = %user_id, listing.id = %listing_id))]
pub async fn upsert_line(
    conn: &mut PgConnection,
    user_id: Uuid,
    listing_id: Uuid,
    quantity: i32,
) -> Result<(), StoreError> {
    sqlx::query!(
        "INSERT INTO carts (user_id) VALUES ($1) ON CONFLICT (user_id) DO NOTHING",
        user_id
    )
    .execute(&mut *conn)
    .await?;
    sqlx::query!(
        "INSERT INTO cart_lines (user_id, listing_id, quantity) VALUES ($1, $2, $3)
         ON CONFLICT (user_id, listing_id) DO UPDATE SET quantity = EXCLUDED.quantity",
        user_id,
        listing_id,
        quantity
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Removes one listing from the cart. Removing an absent line is not an error (idempotent DELETE).
#[tracing::instrument(skip_all, fields(user.id = %user_id, listing.id = %listing_id))]
pub async fn delete_line(
    conn: &mut PgConnection,
    user_id: Uuid,
    listing_id: Uuid,
) -> Result<(), StoreError> {
    sqlx::query!(
        "DELETE FROM cart_lines WHERE user_id = $1 AND listing_id = $2",
        user_id,
        listing_id
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Empties the cart.
#[tracing::instrument(skip_all, fields(user.id = %user_id))]
pub async fn clear(conn: &mut PgConnection, user_id: Uuid) -> Result<(), StoreError> {
    sqlx::query!("DELETE FROM cart_lines WHERE user_id = $1", user_id)
        .execute(conn)
        .await?;
    Ok(())
}
