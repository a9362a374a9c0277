//! The cart rules: what a buyer may put in their cart, and in what quantity.

use sqlx::PgPool;
use uuid::Uuid;

use crate::{
    db::{self, StoreError, cart::CartLineRow},
    domain::money::{self, LimitExceeded, MoneyLimits},
};

/// Why a cart change was refused.
#[derive(Debug, thiserror::Error)]
pub enum CartError {
    /// No such listing, or it is not visible.
    #[error("listing not found")]
    ListingNotFound,
    /// Sellers cannot buy their own listings.
    #[error("you cannot buy your own listing")]
    OwnListing,
    /// The listing was deactivated or deleted.
    #[error("listing is not available for sale")]
    ListingInactive,
    /// Quantity outside 1..=available.
    #[error("quantity must be between 1 and {available}")]
    InvalidQuantity {
        /// Units that can be taken now.
        available: i32,
    },
    /// A cart holds one currency; this listing is priced in another.
    #[error("cart is in {cart}, listing is in {listing}")]
    CurrencyMismatch {
        /// The cart's currency.
        cart: String,
        /// The listing's currency.
        listing: String,
    },
    /// The change would take the cart past a money limit (units per line, lines, total).
    #[error("the cart would exceed a limit: {0}")]
    LimitExceeded(#[from] LimitExceeded),
    /// Database failure.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for CartError {
    fn from(e: sqlx::Error) -> Self {
        CartError::Store(e.into())
    }
}

/// Puts `quantity` units of a listing in the buyer's cart (replacing any previous quantity).
#[tracing::instrument(skip_all, fields(user.id = %buyer_id, listing.id = %listing_id))]
pub async fn set_item(
    pool: &PgPool,
    limits: &MoneyLimits,
    buyer_id: Uuid,
    listing_id: Uuid,
    quantity: i64,
) -> Result<(), CartError> {
    let mut tx = pool.begin().await?;
    let listing = db::listings::find(&mut tx, listing_id)
        .await?
        .ok_or(CartError::ListingNotFound)?;
    if listing.seller_id == buyer_id {
        return Err(CartError::OwnListing);
    }
    if !listing.is_active {
        return Err(CartError::ListingInactive);
    }
    let available = listing.available();
    if quantity < 1 || quantity > i64::from(available) {
        return Err(CartError::InvalidQuantity { available });
    }
    limits.check_line_quantity(quantity)?;
    let lines = db::cart::lines(&mut tx, buyer_id).await?;
    // The cart as it would be after this change, within every limit.
    let others = lines.iter().filter(|l| l.listing_id != listing_id);
    limits.order_total(
        others
            .map(|l| (l.unit_price_cents, i64::from(l.quantity)))
            .chain([(listing.price_cents, quantity)]),
    )?;
    if let Some(other) = lines
        .iter()
        .find(|l| l.listing_id != listing_id && l.currency != listing.currency)
    {
        return Err(CartError::CurrencyMismatch {
            cart: other.currency.clone(),
            listing: listing.currency,
        });
    }
    // In range 1..=available (an i32), so the conversion cannot fail.
    db::cart::upsert_line(&mut tx, buyer_id, listing_id, quantity as i32).await?;
    tx.commit().await?;
    Ok(())
}

/// The buyer's cart with totals.
#[derive(Debug, Clone)]
pub struct Cart {
    /// Lines, oldest first.
    pub lines: Vec<CartLineRow>,
    /// Sum of unit price × quantity.
    pub total_cents: i64,
    /// The cart's currency (`usd` when empty).
    pub currency: String,
}

/// Loads the buyer's cart and computes its total.
pub async fn load(pool: &PgPool, buyer_id: Uuid) -> Result<Cart, CartError> {
    let mut conn = pool.acquire().await?;
    let lines = db::cart::lines(&mut conn, buyer_id).await?;
    // Saturating like each line: a cart this large is refused at checkout, never charged.
    let total_cents =
        money::checked_sum(lines.iter().map(CartLineRow::line_total_cents)).unwrap_or(i64::MAX);
    let currency = lines
        .first()
        .map_or_else(|| "usd".to_owned(), |l| l.currency.clone());
    Ok(Cart {
        lines,
        total_cents,
        currency,
    })
}
