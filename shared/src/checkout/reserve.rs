//! The reservation transaction: lock the listings in id order, re-check stock in Postgres (the
//! authority), then write the reservation, the order, its snapshot lines and the emptied cart in
//! one statement (`db::checkout`), so the row locks are held for as few round trips as possible.

use sqlx::PgConnection;
use uuid::Uuid;

use super::CheckoutPayload;
use crate::{
    db::{
        self, StoreError,
        checkout::{LockedListing, NewOrder, NewOrderLines},
    },
    domain::money::{LimitExceeded, MoneyLimits},
};

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
    let locked = db::checkout::lock_listings(&mut *tx, &ids).await?;
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
    let mut lines = NewOrderLines::default();
    for line in &draft.payload.lines {
        if let Some(l) = locked.iter().find(|l| l.id == line.listing_id) {
            push_line(&mut lines, l, line.quantity);
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
    let order = NewOrder {
        order_id: draft.order_id,
        job_id: draft.job_id,
        buyer_id: draft.buyer_id,
        buyer_username: &draft.payload.buyer_username,
        total_cents,
        currency: &currency,
        shipping_address: &draft.payload.shipping_address,
        ttl_secs: draft.ttl_secs,
        intent_id: draft.intent.as_ref().map(|i| i.id.as_str()),
        client_secret: draft
            .intent
            .as_ref()
            .and_then(|i| i.client_secret.as_deref()),
        lines: &lines,
    };
    db::checkout::create_order(tx, &order).await?;
    Ok(Reservation::Reserved {
        total_cents,
        currency,
    })
}

/// Adds a line of `quantity` units of the locked listing `l`.
fn push_line(lines: &mut NewOrderLines, l: &LockedListing, quantity: i32) {
    lines.line_id.push(Uuid::now_v7());
    lines.listing.push(l.id);
    lines.seller.push(l.seller_id);
    lines.seller_username.push(l.seller_username.clone());
    lines.title.push(l.title.clone());
    lines.price.push(l.price_cents);
    lines.quantity.push(quantity);
}

/// Stores the PaymentIntent on the order and finishes the job, in one statement.
pub(super) async fn store_intent(
    conn: &mut PgConnection,
    order_id: Uuid,
    job_id: Uuid,
    intent: &KnownIntent,
) -> Result<(), StoreError> {
    db::checkout::store_intent(
        conn,
        order_id,
        job_id,
        &intent.id,
        intent.client_secret.as_deref(),
    )
    .await
}
