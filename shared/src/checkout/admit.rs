//! Accepting a checkout in the api: everything that can be refused at once is refused here,
//! before a job exists.

use crate::domain::AddressStatus;
use sha2::{Digest, Sha256};
use sqlx::PgPool;
use uuid::Uuid;

use super::{CheckoutLine, CheckoutPayload, MAX_ATTEMPTS};
use crate::jobs::{Checkout, Job as _};

/// `jobs.kind` of a checkout.
const JOB_KIND: &str = Checkout::NAME;
use crate::{
    db::{
        self, StoreError,
        cart::CheckoutCartLine,
        jobs::{JobRow, NewJob},
    },
    domain::money::{LimitExceeded, MoneyLimits},
    gate::{Admission, GateError, StockGate},
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
#[derive(Debug, Clone)]
pub struct Admitted {
    /// The job row.
    pub job: JobRow,
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
    let digest = Sha256::digest(format!("checkout:{address_id}").as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

fn replay(job: JobRow, print: &str) -> Result<Admitted, AdmitError> {
    if job.request_fingerprint.as_deref() != Some(print) {
        return Err(AdmitError::KeyReused);
    }
    Ok(Admitted {
        job,
        created: false,
    })
}

/// Validates the checkout, takes the units from the stock gate and records the job.
///
/// A buyer's checkouts are serialised (a transaction-scoped advisory lock on the buyer), so a
/// concurrent duplicate with the same key waits for the first one and answers with its job
/// instead of taking the units a second time, and one with another key finds the first job
/// active and is refused with [`AdmitError::CheckoutInProgress`]: one cart makes one order,
/// whatever keys its retries carry.
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
    let print = fingerprint(address_id);
    let mut conn = pool.begin().await?;
    db::jobs::lock_owner(&mut conn, JOB_KIND, buyer_id).await?;
    if let Some(job) = db::jobs::find_by_key(&mut conn, buyer_id, JOB_KIND, idempotency_key).await?
    {
        return replay(job, &print);
    }
    let open = db::cart::for_checkout(&mut conn, buyer_id).await?;
    if let Some(job_id) = open.active_job {
        return Err(AdmitError::CheckoutInProgress(job_id));
    }
    if open.unpaid_orders >= rules.max_unpaid_orders {
        return Err(AdmitError::TooManyUnpaidOrders {
            limit: rules.max_unpaid_orders,
        });
    }
    let cart = open.lines;
    if cart.is_empty() {
        return Err(AdmitError::EmptyCart);
    }
    check_cart(&cart, &rules.limits)?;
    let unavailable: Vec<Uuid> = cart
        .iter()
        .filter(|c| !c.is_active || c.seller_id == buyer_id)
        .map(|c| c.listing_id)
        .collect();
    if !unavailable.is_empty() {
        return Err(AdmitError::ListingsUnavailable(unavailable));
    }
    let address = db::addresses::find_owned(&mut conn, address_id, buyer_id)
        .await?
        .ok_or(AdmitError::AddressNotFound)?;
    if address.status != AddressStatus::Verified {
        return Err(AdmitError::AddressNotVerified);
    }
    let lines: Vec<CheckoutLine> = cart
        .iter()
        .map(|c| CheckoutLine {
            listing_id: c.listing_id,
            quantity: c.quantity,
        })
        .collect();
    let payload = CheckoutPayload {
        buyer_username: buyer_username.to_owned(),
        shipping_address: address.snapshot(),
        lines,
    };
    if let Admission::OutOfStock(short) = gate.reserve(&mut conn, &payload.units()).await? {
        return Err(AdmitError::OutOfStock(short));
    }
    let payload_json = payload.to_json();
    let new_job = NewJob {
        kind: JOB_KIND,
        owner_id: Some(buyer_id),
        payload: &payload_json,
        idempotency_key: Some(idempotency_key),
        request_fingerprint: Some(&print),
        max_attempts: MAX_ATTEMPTS,
    };
    match db::jobs::insert(&mut conn, &new_job).await {
        Ok(Some(job)) => {
            if let Err(e) = conn.commit().await {
                gate.release(&payload.units()).await?;
                return Err(e.into());
            }
            Ok(Admitted { job, created: true })
        }
        other => {
            // Not recorded (the key was taken after all, or the insert failed): this request's
            // units go back to the gate.
            gate.release(&payload.units()).await?;
            other?;
            let job = db::jobs::find_by_key(&mut conn, buyer_id, JOB_KIND, idempotency_key)
                .await?
                .ok_or(StoreError::NotFound)?;
            replay(job, &print)
        }
    }
}
