//! The reservation transaction: lock the listings in id order, re-check stock in Postgres (the
//! authority), then write the reservation, the order, its snapshot lines and the emptied cart in
//! one statement, so the row locks are held for as few round trips as possible.

use sqlx::PgConnection;
use uuid::Uuid;

use super::CheckoutPayload;
use crate::{
    db::StoreError,
    domain::money::{LimitExceeded, MoneyLimits},
};

/// A listing as locked for checkout.
#[derive(Debug, sqlx::FromRow)]
struct LockedListing {
    id: Uuid,
    seller_id: Uuid,
    seller_username: String,
    title: String,
    price_cents: i64,
    currency: String,
    available: i32,
    is_active: bool,
}

/// The result of trying to reserve.
#[derive(Debug)]
pub(super) enum Reservation {
    /// The order exists now, with this total and currency.
    Reserved { total_cents: i64, currency: String },
    /// Postgres says these listings cannot supply the units (the gate was stale).
    OutOfStock(Vec<Uuid>),
    /// A listing changed currency while it sat in the cart: the lines are not in one currency.
    CurrencyMismatch(Vec<Uuid>),
    /// At the prices now locked, the order would break a money limit.
    LimitExceeded(LimitExceeded),
}

/// What the order row is created with.
pub(super) struct OrderDraft<'a> {
    pub order_id: Uuid,
    pub job_id: Uuid,
    pub buyer_id: Uuid,
    pub payload: &'a CheckoutPayload,
    pub ttl_secs: f64,
    /// The money limits the order must stay within.
    pub limits: MoneyLimits,
    /// A PaymentIntent known before the order exists (development payment mode computes it
    /// locally): stored with the order, and the job finishes in the same statement.
    pub intent: Option<KnownIntent>,
}

/// A PaymentIntent to store with the order, and the job result that goes with it.
pub(super) struct KnownIntent {
    pub id: String,
    pub client_secret: Option<String>,
}

/// Reserves stock and creates the order inside the caller's transaction.
pub(super) async fn reserve(
    tx: &mut PgConnection,
    draft: &OrderDraft<'_>,
) -> Result<Reservation, StoreError> {
    let ids: Vec<Uuid> = draft.payload.lines.iter().map(|l| l.listing_id).collect();
    let locked: Vec<LockedListing> = sqlx::query_as(
        "SELECT l.id, l.seller_id, u.username AS seller_username, l.title, l.price_cents, l.currency,
                l.quantity - l.reserved AS available, l.is_active
         FROM listings l JOIN users u ON u.id = l.seller_id
         WHERE l.id = ANY($1) ORDER BY l.id FOR UPDATE OF l",
    )
    .bind(&ids)
    .fetch_all(&mut *tx)
    .await?;
    let short: Vec<Uuid> = draft
        .payload
        .lines
        .iter()
        .filter(|line| {
            !locked.iter().any(|l| {
                l.id == line.listing_id
                    && l.is_active
                    && l.seller_id != draft.buyer_id
                    && l.available >= line.quantity
            })
        })
        .map(|l| l.listing_id)
        .collect();
    if !short.is_empty() {
        return Ok(Reservation::OutOfStock(short));
    }
    // Admission checked currency and limits at the prices of that moment; a seller may have
    // changed either since, so both are checked again under the locks.
    let currency = locked
        .first()
        .map(|l| l.currency.clone())
        .unwrap_or_else(|| "usd".into());
    if locked.iter().any(|l| l.currency != currency) {
        return Ok(Reservation::CurrencyMismatch(
            locked.iter().map(|l| l.id).collect(),
        ));
    }
    let mut lines = LineColumns::default();
    for line in &draft.payload.lines {
        if let Some(l) = locked.iter().find(|l| l.id == line.listing_id) {
            lines.push(l, line.quantity);
        }
    }
    let priced = lines
        .price
        .iter()
        .zip(&lines.quantity)
        .map(|(p, q)| (*p, i64::from(*q)));
    let total_cents = match draft.limits.order_total(priced) {
        Ok(total) => total,
        Err(limit) => return Ok(Reservation::LimitExceeded(limit)),
    };
    sqlx::query(
        "WITH reserve AS (
             UPDATE listings l SET reserved = l.reserved + v.quantity
             FROM unnest($3::uuid[], $9::int[]) AS v(id, quantity) WHERE l.id = v.id),
         new_order AS (
             INSERT INTO orders (id, buyer_id, buyer_username, status, total_cents, currency,
                                 shipping_address, checkout_job_id, expires_at,
                                 payment_intent_id, client_secret)
             VALUES ($1, $2, $10, 'pending_payment', $11, $12, $13, $14,
                     now() + make_interval(secs => $15), $16, $17)),
         new_lines AS (
             INSERT INTO order_lines (id, order_id, listing_id, seller_id, seller_username, title,
                                      unit_price_cents, currency, quantity)
             SELECT line_id, $1, listing_id, seller_id, seller_username, title, price, $12, quantity
             FROM unnest($4::uuid[], $3::uuid[], $5::uuid[], $6::text[], $7::text[], $8::bigint[], $9::int[])
                  AS t(line_id, listing_id, seller_id, seller_username, title, price, quantity)),
         emptied AS (
             DELETE FROM cart_lines WHERE user_id = $2 AND listing_id = ANY($3)),
         finished AS (
             UPDATE jobs SET status = 'succeeded', lease_expires_at = NULL, finished_at = now(),
                    error_code = NULL, error_message = NULL,
                    result = jsonb_build_object('order_id', $1::uuid, 'client_secret', $17::text)
             WHERE id = $14 AND $16::text IS NOT NULL)
         SELECT 1",
    )
    .bind(draft.order_id) // $1
    .bind(draft.buyer_id) // $2
    .bind(&lines.listing) // $3
    .bind(&lines.line_id) // $4
    .bind(&lines.seller) // $5
    .bind(&lines.seller_username) // $6
    .bind(&lines.title) // $7
    .bind(&lines.price) // $8
    .bind(&lines.quantity) // $9
    .bind(&draft.payload.buyer_username) // $10
    .bind(total_cents) // $11
    .bind(&currency) // $12
    .bind(&draft.payload.shipping_address) // $13
    .bind(draft.job_id) // $14
    .bind(draft.ttl_secs) // $15
    .bind(draft.intent.as_ref().map(|i| i.id.as_str())) // $16
    .bind(draft.intent.as_ref().and_then(|i| i.client_secret.as_deref())) // $17
    .execute(&mut *tx)
    .await?;
    Ok(Reservation::Reserved {
        total_cents,
        currency,
    })
}

/// Column arrays for `unnest`: one round trip for all lines.
#[derive(Default)]
struct LineColumns {
    line_id: Vec<Uuid>,
    listing: Vec<Uuid>,
    seller: Vec<Uuid>,
    seller_username: Vec<String>,
    title: Vec<String>,
    price: Vec<i64>,
    quantity: Vec<i32>,
}

impl LineColumns {
    fn push(&mut self, l: &LockedListing, quantity: i32) {
        self.line_id.push(Uuid::now_v7());
        self.listing.push(l.id);
        self.seller.push(l.seller_id);
        self.seller_username.push(l.seller_username.clone());
        self.title.push(l.title.clone());
        self.price.push(l.price_cents);
        self.quantity.push(quantity);
    }
}

/// Stores the PaymentIntent on the order and finishes the job, in one statement.
pub(super) async fn store_intent(
    conn: &mut PgConnection,
    order_id: Uuid,
    job_id: Uuid,
    intent: &KnownIntent,
) -> Result<(), StoreError> {
    sqlx::query(
        "WITH stored AS (
             UPDATE orders SET payment_intent_id = $3, client_secret = $4
             WHERE id = $1 AND payment_intent_id IS NULL)
         UPDATE jobs SET status = 'succeeded', lease_expires_at = NULL, finished_at = now(),
                error_code = NULL, error_message = NULL,
                result = jsonb_build_object('order_id', $1::uuid, 'client_secret', $4::text)
         WHERE id = $2",
    )
    .bind(order_id)
    .bind(job_id)
    .bind(&intent.id)
    .bind(intent.client_secret.as_deref())
    .execute(conn)
    .await?;
    Ok(())
}
