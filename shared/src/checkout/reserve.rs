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
        jobs::JobRow,
    },
    domain::money::{LimitExceeded, MoneyLimits},
    jobs::CLAIM_LEASE,
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

/// An order the listings can supply, priced.
pub(super) struct Planned {
    lines: NewOrderLines,
    /// Sum of the lines.
    pub total_cents: i64,
    /// The lines' one currency.
    pub currency: String,
}

/// Plans the order of `draft` from `listings` (the payload's listings as read: locked, or as
/// the first delivery's plan that the claiming statement re-checks), or says why it cannot be.
pub(super) fn plan(
    listings: &[LockedListing],
    draft: &OrderDraft<'_>,
) -> Result<Planned, Reservation> {
    let short: Vec<Uuid> = draft
        .payload
        .lines
        .iter()
        .filter(|line| {
            !listings.iter().any(|l| {
                l.id == line.listing_id
                    && l.is_active
                    && l.seller_id != draft.buyer_id
                    && l.available >= line.quantity
            })
        })
        .map(|l| l.listing_id)
        .collect();
    if !short.is_empty() {
        return Err(Reservation::OutOfStock(short));
    }
    // Admission checked currency and limits at the prices of that moment; a seller may have
    // changed either since, so both are checked again.
    let currency = listings
        .first()
        .map(|l| l.currency.clone())
        .unwrap_or_else(|| "usd".into());
    if listings.iter().any(|l| l.currency != currency) {
        return Err(Reservation::CurrencyMismatch(
            listings.iter().map(|l| l.id).collect(),
        ));
    }
    let mut lines = NewOrderLines::default();
    for line in &draft.payload.lines {
        if let Some(l) = listings.iter().find(|l| l.id == line.listing_id) {
            push_line(&mut lines, l, line.quantity);
        }
    }
    let priced = lines
        .price
        .iter()
        .zip(&lines.quantity)
        .map(|(p, q)| (*p, i64::from(*q)));
    match draft.limits.order_total(priced) {
        Ok(total_cents) => Ok(Planned {
            lines,
            total_cents,
            currency,
        }),
        Err(limit) => Err(Reservation::LimitExceeded(limit)),
    }
}

/// The order row and lines of `planned`.
fn new_order<'a>(draft: &'a OrderDraft<'_>, planned: &'a Planned) -> NewOrder<'a> {
    NewOrder {
        order_id: draft.order_id,
        job_id: draft.job_id,
        buyer_id: draft.buyer_id,
        buyer_username: &draft.payload.buyer_username,
        total_cents: planned.total_cents,
        currency: &planned.currency,
        shipping_address: &draft.payload.shipping_address,
        ttl_secs: draft.ttl_secs,
        intent_id: draft.intent.as_ref().map(|i| i.id.as_str()),
        client_secret: draft
            .intent
            .as_ref()
            .and_then(|i| i.client_secret.as_deref()),
        lines: &planned.lines,
    }
}

/// Reserves stock and creates the order inside the caller's transaction.
pub(super) async fn reserve(
    tx: &mut PgConnection,
    draft: &OrderDraft<'_>,
) -> Result<Reservation, StoreError> {
    let ids: Vec<Uuid> = draft.payload.lines.iter().map(|l| l.listing_id).collect();
    let locked = db::checkout::lock_listings(&mut *tx, &ids).await?;
    let planned = match plan(&locked, draft) {
        Ok(planned) => planned,
        Err(refused) => return Ok(refused),
    };
    db::checkout::create_order(tx, &new_order(draft, &planned)).await?;
    Ok(Reservation::Reserved {
        total_cents: planned.total_cents,
        currency: planned.currency,
    })
}

/// Claims the never-attempted job of `draft` and creates the order `planned` for it, in one
/// statement ([`db::checkout::claim_and_create_order`]): the claimed job, or `None` when
/// nothing was written.
pub(super) async fn claim_and_reserve(
    conn: &mut PgConnection,
    draft: &OrderDraft<'_>,
    planned: &Planned,
) -> Result<Option<JobRow>, StoreError> {
    db::checkout::claim_and_create_order(conn, &new_order(draft, planned), CLAIM_LEASE).await
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
