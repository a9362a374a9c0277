//! Accepting a checkout in the api: everything that can be refused at once is refused here,
//! before a job exists.

use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use super::{CheckoutLine, CheckoutPayload, MAX_ATTEMPTS};
use crate::{
    db::{
        self, StoreError,
        admission::{AdmissionView, CheckoutCartLine, KeyedJob, NewCheckoutJob},
    },
    domain::{
        AddressStatus,
        money::{LimitExceeded, MoneyLimits},
    },
    gate::{Admission, GateError, StockGate, TICKET_TTL},
};

/// Why a checkout was refused.
#[derive(Debug, thiserror::Error)]
pub enum AdmitError {
    /// Nothing in the cart.
    #[error("the cart is empty")]
    EmptyCart,
    /// No such address for this buyer.
    #[error("address not found")]
    AddressNotFound,
    /// The address is not (yet) verified.
    #[error("the shipping address is not verified")]
    AddressNotVerified,
    /// Cart lines that can no longer be bought (inactive or own listings).
    #[error("some cart items are no longer available")]
    ListingsUnavailable(Vec<Uuid>),
    /// The cart mixes currencies; an order has exactly one. Each line with its currency.
    #[error("an order has one currency; this cart mixes several")]
    CurrencyMismatch(Vec<(Uuid, String)>),
    /// The cart exceeds a money limit (lines, units per line, unit price, order total).
    #[error("the cart exceeds a limit: {0}")]
    LimitExceeded(#[from] LimitExceeded),
    /// Another checkout of this buyer's cart is queued or running: one cart, one order.
    #[error("a checkout of this cart is already in progress")]
    CheckoutInProgress(Uuid),
    /// The buyer already holds the most orders awaiting payment that are allowed.
    #[error("too many orders awaiting payment; pay or cancel one first")]
    TooManyUnpaidOrders {
        /// `MAX_UNPAID_ORDERS`.
        limit: i64,
    },
    /// The gate refused: these listings lack units.
    #[error("out of stock")]
    OutOfStock(Vec<Uuid>),
    /// The key was used before with a different request.
    #[error("this Idempotency-Key was already used with a different request")]
    KeyReused,
    /// Another checkout of the buyer held its units for longer than its gate ticket lasts
    /// without recording a job (its database is stuck): try again shortly.
    #[error("another checkout of this cart is still being admitted; try again shortly")]
    StillAdmitting,
    /// Database failure.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Redis failure.
    #[error(transparent)]
    Gate(#[from] GateError),
}

impl From<sqlx::Error> for AdmitError {
    fn from(e: sqlx::Error) -> Self {
        AdmitError::Store(e.into())
    }
}

/// An accepted checkout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Admitted {
    /// The job.
    pub job_id: Uuid,
    /// `true` if this call created it (the caller pushes it onto the queue); `false` if the key
    /// was seen before and this is the original job.
    pub created: bool,
}

/// What admission enforces besides stock.
#[derive(Debug, Clone, Copy)]
pub struct AdmitRules {
    /// Lines, units, prices and the order total.
    pub limits: MoneyLimits,
    /// `MAX_UNPAID_ORDERS`.
    pub max_unpaid_orders: i64,
}

impl AdmitRules {
    /// The rules the settings configure.
    pub fn from_settings(settings: &crate::config::Settings) -> Self {
        Self {
            limits: settings.limits,
            max_unpaid_orders: settings.max_unpaid_orders,
        }
    }
}

/// Refuses a cart that mixes currencies or breaks a money limit, at today's prices.
fn check_cart(cart: &[CheckoutCartLine], limits: &MoneyLimits) -> Result<(), AdmitError> {
    if cart.iter().any(|c| c.currency != cart[0].currency) {
        let lines = cart
            .iter()
            .map(|c| (c.listing_id, c.currency.clone()))
            .collect();
        return Err(AdmitError::CurrencyMismatch(lines));
    }
    limits.order_total(cart.iter().map(|c| (c.price_cents, i64::from(c.quantity))))?;
    Ok(())
}

fn fingerprint(address_id: Uuid) -> String {
    hex(&Sha256::digest(format!("checkout:{address_id}").as_bytes()))
}

/// The stock gate's ticket of a buyer's admissions: one at a time holds units unrecorded.
fn ticket(buyer_id: Uuid) -> String {
    format!("checkout:{buyer_id}")
}

fn hex(digest: &[u8]) -> String {
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

fn replay(job: KeyedJob, print: &str) -> Result<Admitted, AdmitError> {
    if job.request_fingerprint.as_deref() != Some(print) {
        return Err(AdmitError::KeyReused);
    }
    Ok(Admitted {
        job_id: job.id,
        created: false,
    })
}

/// How often a request waiting for another admission of its buyer looks again.
const IN_FLIGHT_POLL: Duration = Duration::from_millis(10);
/// How long it waits at most: past the other request's gate ticket, which lapses by then.
const IN_FLIGHT_WAIT: Duration = Duration::from_secs(TICKET_TTL.as_secs() + 1);

/// One request to admit.
struct Request<'a> {
    rules: &'a AdmitRules,
    buyer_id: Uuid,
    buyer_username: &'a str,
    address_id: Uuid,
    key: &'a str,
    print: String,
    ticket: String,
}

/// Validates the checkout, takes the units from the stock gate and records the job.
///
/// Two round trips to PostgreSQL for an accepted checkout and one for a refused one: one
/// statement reads everything the decision depends on ([`db::admission::view`]: a job made with
/// this key, an active checkout, the orders awaiting payment, the address, the cart), the gate
/// takes the units in Redis, and one statement records the job ([`db::admission::record`]).
/// No database lock is held across the gate. Concurrent requests of one buyer are settled by
/// the gate's ticket (one per buyer): only one of them at a time takes units; the others wait
/// (polling every 10 ms) until it has recorded its job or given up, and then decide on what
/// they read: the same key answers with that job, another key is refused with
/// [`AdmitError::CheckoutInProgress`] naming it. One cart makes one order, whatever keys its
/// retries carry; the unique index on a buyer's active checkout backs that up should a ticket
/// lapse.
///
/// The gate loads missing counters through the same connection: taking a second one while
/// holding this one could exhaust the pool under a burst of checkouts.
#[tracing::instrument(skip_all, fields(user.id = %buyer_id))]
pub async fn admit(
    pool: &PgPool,
    gate: &StockGate,
    rules: &AdmitRules,
    buyer_id: Uuid,
    buyer_username: &str,
    address_id: Uuid,
    idempotency_key: &str,
) -> Result<Admitted, AdmitError> {
    let request = Request {
        rules,
        buyer_id,
        buyer_username,
        address_id,
        key: idempotency_key,
        print: fingerprint(address_id),
        ticket: ticket(buyer_id),
    };
    let started = Instant::now();
    loop {
        // Taken per pass and given back before waiting: requests waiting for another one of
        // their buyer must not hold the pool's connections.
        let mut conn = pool.acquire().await?;
        if let Some(admitted) = admit_once(&mut conn, gate, &request).await? {
            return Ok(admitted);
        }
        drop(conn);
        if started.elapsed() >= IN_FLIGHT_WAIT {
            return Err(AdmitError::StillAdmitting);
        }
        tokio::time::sleep(IN_FLIGHT_POLL).await;
    }
}

/// One pass of [`admit`]: `None` when another request of the buyer is being admitted (or what
/// kept this one out is gone already), so the caller looks again shortly.
async fn admit_once(
    conn: &mut PgConnection,
    gate: &StockGate,
    request: &Request<'_>,
) -> Result<Option<Admitted>, AdmitError> {
    let view = db::admission::view(conn, request.buyer_id, request.key, request.address_id).await?;
    if let Some(job) = view.keyed_job {
        return replay(job, &request.print).map(Some);
    }
    let payload = decide(&view, request)?;
    let units = payload.units();
    match gate.reserve(conn, &request.ticket, &units).await? {
        Admission::Admitted => {}
        Admission::OutOfStock(short) => return Err(AdmitError::OutOfStock(short)),
        Admission::InFlight => return Ok(None),
        Admission::OutOfStockAfterSibling(short) => {
            // A request of this buyer was recorded since `view` read: answer as it left things.
            let view = db::admission::view(conn, request.buyer_id, request.key, request.address_id)
                .await?;
            if let Some(job) = view.keyed_job {
                return replay(job, &request.print).map(Some);
            }
            refuse_open(&view, request.rules)?;
            return Err(AdmitError::OutOfStock(short));
        }
    }
    let payload_json = payload.to_json();
    let job = NewCheckoutJob {
        buyer_id: request.buyer_id,
        payload: &payload_json,
        idempotency_key: request.key,
        request_fingerprint: &request.print,
        max_attempts: MAX_ATTEMPTS,
        max_unpaid_orders: request.rules.max_unpaid_orders,
    };
    let recorded = db::admission::record(conn, &job).await;
    if let Ok(Some(job_id)) = recorded {
        // The job holds the units now. Left in place, the ticket would hold off the buyer's
        // next checkout until it lapses.
        if let Err(e) = gate.free_ticket(&request.ticket).await {
            tracing::warn!(error.message = %e, "could not free the stock gate ticket; it lapses on its own");
        }
        return Ok(Some(Admitted {
            job_id,
            created: true,
        }));
    }
    // Not recorded (another job got in first, or the insert failed): this request's units go
    // back to the gate, and what got in first decides the answer.
    gate.cancel(&request.ticket, &units).await?;
    recorded?;
    let view = db::admission::view(conn, request.buyer_id, request.key, request.address_id).await?;
    if let Some(job) = view.keyed_job {
        return replay(job, &request.print).map(Some);
    }
    refuse_open(&view, request.rules)?;
    Ok(None)
}

/// Refuses while another checkout is active or too many orders await payment.
fn refuse_open(view: &AdmissionView, rules: &AdmitRules) -> Result<(), AdmitError> {
    if let Some(job_id) = view.active_job {
        return Err(AdmitError::CheckoutInProgress(job_id));
    }
    if view.unpaid_orders >= rules.max_unpaid_orders {
        return Err(AdmitError::TooManyUnpaidOrders {
            limit: rules.max_unpaid_orders,
        });
    }
    Ok(())
}

/// Everything that refuses a checkout before the gate, in the order the answers are given; the
/// job's payload when nothing does.
fn decide(view: &AdmissionView, request: &Request<'_>) -> Result<CheckoutPayload, AdmitError> {
    refuse_open(view, request.rules)?;
    let cart = &view.lines;
    if cart.is_empty() {
        return Err(AdmitError::EmptyCart);
    }
    check_cart(cart, &request.rules.limits)?;
    let unavailable: Vec<Uuid> = cart
        .iter()
        .filter(|c| !c.is_active || c.seller_id == request.buyer_id)
        .map(|c| c.listing_id)
        .collect();
    if !unavailable.is_empty() {
        return Err(AdmitError::ListingsUnavailable(unavailable));
    }
    let address = view.address.as_ref().ok_or(AdmitError::AddressNotFound)?;
    if address.status != AddressStatus::Verified {
        return Err(AdmitError::AddressNotVerified);
    }
    Ok(CheckoutPayload {
        buyer_username: request.buyer_username.to_owned(),
        shipping_address: address.snapshot.clone(),
        lines: cart
            .iter()
            .map(|c| CheckoutLine {
                listing_id: c.listing_id,
                quantity: c.quantity,
            })
            .collect(),
    })
}
