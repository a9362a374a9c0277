//! Checkout admission's two statements: everything it decides on, read in one round trip, and
//! the job recorded in one more, guarded by the database so that concurrent admissions of one
//! buyer cannot both get in.

use serde_json::Value;
use sqlx::PgConnection;
use uuid::Uuid;

use super::StoreError;
use crate::{
    domain::AddressStatus,
    jobs::{Checkout, Job as _},
};

/// `jobs.kind` of a checkout.
const CHECKOUT: &str = Checkout::NAME;

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

/// The buyer's job created with this request's `Idempotency-Key`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyedJob {
    /// The job.
    pub id: Uuid,
    /// What the request that created it asked for.
    pub request_fingerprint: Option<String>,
}

/// The shipping address as admission sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckoutAddress {
    /// Geocoding state: only `verified` addresses ship.
    pub status: AddressStatus,
    /// What the order keeps of it, independent of later edits or deletion.
    pub snapshot: Value,
}

/// Everything checkout admission decides on, read in one statement (one snapshot).
#[derive(Debug, Clone, PartialEq)]
pub struct AdmissionView {
    /// The job this `Idempotency-Key` already made, if any.
    pub keyed_job: Option<KeyedJob>,
    /// A `checkout` job of the buyer still queued or running, if any.
    pub active_job: Option<Uuid>,
    /// Orders of the buyer awaiting payment.
    pub unpaid_orders: i64,
    /// The address asked for, if it is the buyer's and not deleted.
    pub address: Option<CheckoutAddress>,
    /// The cart lines, sorted by listing id.
    pub lines: Vec<CheckoutCartLine>,
}

struct AdmissionRow {
    keyed_job: Option<Uuid>,
    keyed_fingerprint: Option<String>,
    active_job: Option<Uuid>,
    unpaid_orders: i64,
    address_status: Option<AddressStatus>,
    address_snapshot: Option<Value>,
    listing_id: Option<Uuid>,
    quantity: Option<i32>,
    seller_id: Option<Uuid>,
    is_active: Option<bool>,
    price_cents: Option<i64>,
    currency: Option<String>,
}

/// Reads what admitting a checkout of `buyer_id`'s cart to `address_id` with `key` depends on,
/// see [`AdmissionView`]. Always one row at least, with the cart's columns empty when the cart
/// is; the address snapshot is built here, the one place that says what an order keeps.
#[tracing::instrument(skip_all, fields(user.id = %buyer_id))]
pub async fn view(
    conn: &mut PgConnection,
    buyer_id: Uuid,
    key: &str,
    address_id: Uuid,
) -> Result<AdmissionView, StoreError> {
    let rows = sqlx::query_as!(
        AdmissionRow,
        r#"SELECT k.id AS "keyed_job?", k.request_fingerprint AS "keyed_fingerprint?",
                o.active_job AS "active_job?", o.unpaid_orders AS "unpaid_orders!",
                a.status AS "address_status?: AddressStatus", a.snapshot AS "address_snapshot?",
                c.listing_id AS "listing_id?", c.quantity AS "quantity?", l.seller_id AS "seller_id?",
                l.is_active AS "is_active?", l.price_cents AS "price_cents?", l.currency AS "currency?"
         FROM (SELECT (SELECT id FROM jobs -- by `jobs_one_active_checkout`, whose predicate this repeats
                       WHERE owner_id = $1 AND kind = 'checkout' AND status IN ('queued', 'running')
                       ORDER BY id LIMIT 1) AS active_job,
                      (SELECT count(*) FROM orders
                       WHERE buyer_id = $1 AND status = 'pending_payment') AS unpaid_orders) o
         LEFT JOIN jobs k ON k.owner_id = $1 AND k.kind = $4 AND k.idempotency_key = $2
         LEFT JOIN LATERAL (
             SELECT status,
                    jsonb_build_object('address_id', id, 'line1', line1, 'line2', line2,
                                       'city', city, 'region', region, 'postal_code', postal_code,
                                       'country', country, 'formatted_address', formatted_address,
                                       'latitude', latitude, 'longitude', longitude,
                                       'place_id', place_id) AS snapshot
             FROM addresses WHERE id = $3 AND user_id = $1 AND deleted_at IS NULL) a ON true
         LEFT JOIN (cart_lines c JOIN listings l ON l.id = c.listing_id) ON c.user_id = $1
         ORDER BY c.listing_id"#,
        buyer_id,
        key,
        address_id,
        CHECKOUT
    )
    .fetch_all(conn)
    .await?;
    let Some(first) = rows.first() else {
        return Err(StoreError::NotFound);
    };
    let keyed_job = first.keyed_job.map(|id| KeyedJob {
        id,
        request_fingerprint: first.keyed_fingerprint.clone(),
    });
    let address = match (first.address_status, &first.address_snapshot) {
        (Some(status), Some(snapshot)) => Some(CheckoutAddress {
            status,
            snapshot: snapshot.clone(),
        }),
        _ => None,
    };
    let (active_job, unpaid_orders) = (first.active_job, first.unpaid_orders);
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
    Ok(AdmissionView {
        keyed_job,
        active_job,
        unpaid_orders,
        address,
        lines,
    })
}

/// A checkout job to record.
#[derive(Debug, Clone)]
pub struct NewCheckoutJob<'a> {
    /// The buyer.
    pub buyer_id: Uuid,
    /// What the worker will reserve.
    pub payload: &'a Value,
    /// The request's `Idempotency-Key`.
    pub idempotency_key: &'a str,
    /// What the request asked for (a replay must ask for the same).
    pub request_fingerprint: &'a str,
    /// Attempts before the job gives up.
    pub max_attempts: i32,
    /// `MAX_UNPAID_ORDERS`: not recorded if the buyer holds that many orders awaiting payment.
    pub max_unpaid_orders: i64,
}

/// Records a queued checkout job, in one statement that commits on its own. `None` when it was
/// not recorded: the key has a job already (`jobs_owner_kind_idempotency_key`), another checkout
/// of the buyer is queued or running (`jobs_one_active_checkout`: one cart, one order, whatever
/// the keys), or the buyer reached `max_unpaid_orders` since [`view`] read them. Concurrent
/// admissions are settled by those unique indexes, not by a lock held across the gate.
#[tracing::instrument(skip_all, fields(user.id = %job.buyer_id))]
pub async fn record(
    conn: &mut PgConnection,
    job: &NewCheckoutJob<'_>,
) -> Result<Option<Uuid>, StoreError> {
    // The trace of the request that creates the job; the worker continues it.
    let trace_context = crate::telemetry::trace_context();
    Ok(sqlx::query_scalar!(
        "INSERT INTO jobs (id, kind, owner_id, payload, idempotency_key, request_fingerprint,
                           max_attempts, trace_context)
         SELECT $1, $2, $3, $4, $5, $6, $7, $8
         WHERE (SELECT count(*) FROM orders WHERE buyer_id = $3 AND status = 'pending_payment') < $9
         ON CONFLICT DO NOTHING
         RETURNING id",
        Uuid::now_v7(),
        CHECKOUT,
        job.buyer_id,
        job.payload,
        job.idempotency_key,
        job.request_fingerprint,
        job.max_attempts,
        trace_context,
        job.max_unpaid_orders
    )
    .fetch_optional(conn)
    .await?)
}
