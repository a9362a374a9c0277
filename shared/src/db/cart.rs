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
