//! The checkout's reservation: the listings locked in id order, then the reservation, the
//! order, its snapshot lines, the emptied cart (and, when the PaymentIntent is known already,
//! the finished job) written in one statement, so the row locks are held for as few round trips
//! as possible.

use serde_json::Value;
use sqlx::PgConnection;
use uuid::Uuid;

use super::StoreError;
use crate::domain::{JobStatus, OrderStatus};

/// A listing as locked for checkout.
#[derive(Debug, Clone)]
pub struct LockedListing {
    /// The listing.
    pub id: Uuid,
    /// Its seller.
    pub seller_id: Uuid,
    /// The seller's username (snapshot for the line).
    pub seller_username: String,
    /// Title (snapshot for the line).
    pub title: String,
    /// Unit price.
    pub price_cents: i64,
    /// Currency of the price.
    pub currency: String,
    /// `quantity - reserved`.
    pub available: i32,
    /// Whether it is for sale.
    pub is_active: bool,
}

/// Locks the listings `ids` for a checkout, in id order (`FOR UPDATE OF l`), with their seller's
/// username.
#[tracing::instrument(skip_all)]
pub async fn lock_listings(
    conn: &mut PgConnection,
    ids: &[Uuid],
) -> Result<Vec<LockedListing>, StoreError> {
    Ok(sqlx::query_as!(
        LockedListing,
        r#"SELECT l.id, l.seller_id, u.username AS seller_username, l.title, l.price_cents, l.currency,
                l.quantity - l.reserved AS "available!", l.is_active
         FROM listings l JOIN users u ON u.id = l.seller_id
         WHERE l.id = ANY($1) ORDER BY l.id FOR UPDATE OF l"#,
        ids
    )
    .fetch_all(conn)
    .await?)
}

/// The order lines of a new order, as column arrays for `unnest`: one round trip for all lines.
#[derive(Debug, Clone, Default)]
pub struct NewOrderLines {
    /// Line ids.
    pub line_id: Vec<Uuid>,
    /// Listings.
    pub listing: Vec<Uuid>,
    /// Sellers.
    pub seller: Vec<Uuid>,
    /// Sellers' usernames.
    pub seller_username: Vec<String>,
    /// Titles.
    pub title: Vec<String>,
    /// Unit prices.
    pub price: Vec<i64>,
    /// Units.
    pub quantity: Vec<i32>,
}

/// What a new order is created with.
#[derive(Debug, Clone)]
pub struct NewOrder<'a> {
    /// The order's id.
    pub order_id: Uuid,
    /// The checkout job creating it.
    pub job_id: Uuid,
    /// The buyer.
    pub buyer_id: Uuid,
    /// The buyer's username (snapshot).
    pub buyer_username: &'a str,
    /// Sum of the lines.
    pub total_cents: i64,
    /// The lines' currency.
    pub currency: &'a str,
    /// Address snapshot.
    pub shipping_address: &'a Value,
    /// Seconds until the reservation expires.
    pub ttl_secs: f64,
    /// A PaymentIntent known before the order exists: stored with the order, and the job is
    /// finished in the same statement.
    pub intent_id: Option<&'a str>,
    /// That intent's client secret.
    pub client_secret: Option<&'a str>,
    /// The lines.
    pub lines: &'a NewOrderLines,
}

/// Reserves the lines' units, creates the order (`pending_payment`) and its lines, removes the
/// lines from the buyer's cart and, when the intent is known, finishes the job: one statement,
/// in the caller's transaction, with the listings locked by [`lock_listings`].
#[tracing::instrument(skip_all, fields(order.id = %order.order_id))]
pub async fn create_order(conn: &mut PgConnection, order: &NewOrder<'_>) -> Result<(), StoreError> {
    let lines = order.lines;
    sqlx::query!(
        "WITH reserve AS (
             UPDATE listings l SET reserved = l.reserved + v.quantity
             FROM unnest($3::uuid[], $9::int[]) AS v(id, quantity) WHERE l.id = v.id),
         new_order AS (
             INSERT INTO orders (id, buyer_id, buyer_username, status, total_cents, currency,
                                 shipping_address, checkout_job_id, expires_at,
                                 payment_intent_id, client_secret)
             VALUES ($1, $2, $10, $18, $11, $12, $13, $14,
                     now() + make_interval(secs => $15), $16, $17)),
         new_lines AS (
             INSERT INTO order_lines (id, order_id, listing_id, seller_id, seller_username, title,
                                      unit_price_cents, currency, quantity, image_key)
             SELECT line_id, $1, listing_id, seller_id, seller_username, title, price, $12, quantity,
                    (SELECT i.thumb_key FROM images i
                     WHERE i.listing_id = t.listing_id AND i.status = 'ready'
                     ORDER BY i.position, i.id LIMIT 1)
             FROM unnest($4::uuid[], $3::uuid[], $5::uuid[], $6::text[], $7::text[], $8::bigint[], $9::int[])
                  AS t(line_id, listing_id, seller_id, seller_username, title, price, quantity)),
         emptied AS (
             DELETE FROM cart_lines WHERE user_id = $2 AND listing_id = ANY($3)),
         finished AS (
             UPDATE jobs SET status = $19, lease_expires_at = NULL, finished_at = now(),
                    error_code = NULL, error_message = NULL,
                    result = jsonb_build_object('order_id', $1::uuid, 'client_secret', $17::text)
             WHERE id = $14 AND $16::text IS NOT NULL)
         SELECT 1 AS one",
        order.order_id,             // $1
        order.buyer_id,             // $2
        &lines.listing,             // $3
        &lines.line_id,             // $4
        &lines.seller,              // $5
        &lines.seller_username,     // $6
        &lines.title,               // $7
        &lines.price,               // $8
        &lines.quantity,            // $9
        order.buyer_username,       // $10
        order.total_cents,          // $11
        order.currency,             // $12
        order.shipping_address,     // $13
        order.job_id,               // $14
        order.ttl_secs,             // $15
        order.intent_id,            // $16
        order.client_secret,        // $17
        OrderStatus::PendingPayment as OrderStatus, // $18
        JobStatus::Succeeded as JobStatus           // $19
    )
    .fetch_one(conn)
    .await?;
    Ok(())
}

/// Stores the PaymentIntent on the order (if it has none yet) and finishes the job with the
/// order id and client secret, in one statement.
#[tracing::instrument(skip_all, fields(order.id = %order_id))]
pub async fn store_intent(
    conn: &mut PgConnection,
    order_id: Uuid,
    job_id: Uuid,
    intent_id: &str,
    client_secret: Option<&str>,
) -> Result<(), StoreError> {
    sqlx::query!(
        "WITH stored AS (
             UPDATE orders SET payment_intent_id = $3, client_secret = $4
             WHERE id = $1 AND payment_intent_id IS NULL)
         UPDATE jobs SET status = $5, lease_expires_at = NULL, finished_at = now(),
                error_code = NULL, error_message = NULL,
                result = jsonb_build_object('order_id', $1::uuid, 'client_secret', $4::text)
         WHERE id = $2",
        order_id,
        job_id,
        intent_id,
        client_secret,
        JobStatus::Succeeded as JobStatus
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// A checkout job never attempted yet, with the listings its payload names as they are now
/// (not locked): what the first delivery plans its order from.
#[derive(Debug, Clone)]
pub struct QueuedCheckout {
    /// The buyer.
    pub owner_id: Uuid,
    /// The job's payload (`checkout::CheckoutPayload`).
    pub payload: Value,
    /// The listings of the payload's lines that exist, by id.
    pub listings: Vec<LockedListing>,
}

struct QueuedCheckoutRow {
    owner_id: Option<Uuid>,
    payload: Value,
    id: Option<Uuid>,
    seller_id: Option<Uuid>,
    seller_username: Option<String>,
    title: Option<String>,
    price_cents: Option<i64>,
    currency: Option<String>,
    available: Option<i32>,
    is_active: Option<bool>,
}

/// Checkout job `job_id` if it is queued and was never attempted, with its listings, in one
/// read. A listing id in the payload that is not a UUID names no listing (the payload is
/// checked when it is parsed).
#[tracing::instrument(skip_all, fields(job.id = %job_id))]
pub async fn queued_checkout(
    conn: &mut PgConnection,
    job_id: Uuid,
) -> Result<Option<QueuedCheckout>, StoreError> {
    let rows = sqlx::query_as!(
        QueuedCheckoutRow,
        r#"SELECT j.owner_id, j.payload, l.id AS "id?", l.seller_id AS "seller_id?",
                l.seller_username AS "seller_username?", l.title AS "title?",
                l.price_cents AS "price_cents?", l.currency AS "currency?",
                l.available AS "available?", l.is_active AS "is_active?"
         FROM jobs j
         -- `= ANY(ARRAY(...))` so that the listings are looked up by their index, one by one.
         LEFT JOIN LATERAL (
             SELECT l.id, l.seller_id, u.username AS seller_username, l.title, l.price_cents,
                    l.currency, l.quantity - l.reserved AS available, l.is_active
             FROM listings l JOIN users u ON u.id = l.seller_id
             WHERE l.id = ANY(ARRAY(
                 SELECT CASE WHEN e->>'listing_id' ~* '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$'
                             THEN (e->>'listing_id')::uuid END
                 FROM jsonb_array_elements(CASE jsonb_typeof(j.payload->'lines')
                                           WHEN 'array' THEN j.payload->'lines' ELSE '[]' END) e))) l
           ON true
         WHERE j.id = $1 AND j.kind = 'checkout' AND j.status = 'queued' AND j.attempts = 0
         ORDER BY l.id"#,
        job_id
    )
    .fetch_all(conn)
    .await?;
    let Some(first) = rows.first() else {
        return Ok(None);
    };
    let (Some(owner_id), payload) = (first.owner_id, first.payload.clone()) else {
        return Ok(None);
    };
    let listings = rows
        .into_iter()
        .filter_map(|r| {
            Some(LockedListing {
                id: r.id?,
                seller_id: r.seller_id?,
                seller_username: r.seller_username?,
                title: r.title?,
                price_cents: r.price_cents?,
                currency: r.currency?,
                available: r.available?,
                is_active: r.is_active?,
            })
        })
        .collect();
    Ok(Some(QueuedCheckout {
        owner_id,
        payload,
        listings,
    }))
}

/// Claims never-attempted checkout job `order.job_id` and creates its order in one statement
/// (one transaction, one commit): the listings are locked in id order, and only if each one is
/// still active, not the buyer's own, has the units and the very price and currency the order
/// was planned at, the job is claimed (attempt 1; `succeeded` with its result when the intent
/// is known, else `running` under a lease of `lease`) and the reservation, order, lines and
/// emptied cart are written, as [`create_order`] writes them. `None` when nothing was written:
/// the job was claimed by another delivery meanwhile, or a listing changed; the caller then
/// takes the usual way (claim, then [`lock_listings`] and [`create_order`]).
#[tracing::instrument(skip_all, fields(job.id = %order.job_id, order.id = %order.order_id))]
pub async fn claim_and_create_order(
    conn: &mut PgConnection,
    order: &NewOrder<'_>,
    lease: std::time::Duration,
) -> Result<Option<super::jobs::JobRow>, StoreError> {
    let lines = order.lines;
    let finished = order.intent_id.is_some();
    Ok(sqlx::query_as!(
        super::jobs::JobRow,
        r#"WITH locked AS (
             SELECT l.id, l.quantity - l.reserved AS available, l.is_active, l.seller_id,
                    l.price_cents, l.currency
             FROM listings l WHERE l.id = ANY($3) ORDER BY l.id FOR UPDATE),
         unchanged AS (
             SELECT count(*) = cardinality($3::uuid[]) AS ok
             FROM locked k
             JOIN unnest($3::uuid[], $9::int[], $8::bigint[]) AS v(id, quantity, price) ON v.id = k.id
             WHERE k.is_active AND k.seller_id <> $2 AND k.available >= v.quantity
               AND k.price_cents = v.price AND k.currency = $12),
         claimed AS (
             UPDATE jobs SET status = CASE WHEN $20 THEN $19 ELSE $21 END,
                    attempts = attempts + 1, retry_at = NULL,
                    lease_expires_at = CASE WHEN $20 THEN NULL ELSE now() + make_interval(secs => $22) END,
                    finished_at = CASE WHEN $20 THEN now() END,
                    error_code = NULL, error_message = NULL,
                    result = CASE WHEN $20
                             THEN jsonb_build_object('order_id', $1::uuid, 'client_secret', $17::text) END
             WHERE id = $14 AND kind = 'checkout' AND status = 'queued' AND attempts = 0
               AND (SELECT ok FROM unchanged)
             RETURNING id, kind, owner_id, status, attempts, max_attempts, payload, result, error_code,
                       error_message, request_fingerprint, created_at, updated_at),
         reserve AS (
             UPDATE listings l SET reserved = l.reserved + v.quantity
             FROM unnest($3::uuid[], $9::int[]) AS v(id, quantity)
             WHERE l.id = v.id AND EXISTS (SELECT 1 FROM claimed)),
         new_order AS (
             INSERT INTO orders (id, buyer_id, buyer_username, status, total_cents, currency,
                                 shipping_address, checkout_job_id, expires_at,
                                 payment_intent_id, client_secret)
             SELECT $1, $2, $10, $18, $11, $12, $13, $14,
                    now() + make_interval(secs => $15), $16, $17
             WHERE EXISTS (SELECT 1 FROM claimed)),
         new_lines AS (
             INSERT INTO order_lines (id, order_id, listing_id, seller_id, seller_username, title,
                                      unit_price_cents, currency, quantity, image_key)
             SELECT line_id, $1, listing_id, seller_id, seller_username, title, price, $12, quantity,
                    (SELECT i.thumb_key FROM images i
                     WHERE i.listing_id = t.listing_id AND i.status = 'ready'
                     ORDER BY i.position, i.id LIMIT 1)
             FROM unnest($4::uuid[], $3::uuid[], $5::uuid[], $6::text[], $7::text[], $8::bigint[], $9::int[])
                  AS t(line_id, listing_id, seller_id, seller_username, title, price, quantity)
             WHERE EXISTS (SELECT 1 FROM claimed)),
         emptied AS (
             DELETE FROM cart_lines
             WHERE user_id = $2 AND listing_id = ANY($3) AND EXISTS (SELECT 1 FROM claimed))
         SELECT id AS "id!", kind AS "kind!", owner_id, status AS "status!: JobStatus",
                attempts AS "attempts!", max_attempts AS "max_attempts!", payload AS "payload!",
                result, error_code, error_message, request_fingerprint,
                created_at AS "created_at!", updated_at AS "updated_at!"
         FROM claimed"#,
        order.order_id,             // $1
        order.buyer_id,             // $2
        &lines.listing,             // $3
        &lines.line_id,             // $4
        &lines.seller,              // $5
        &lines.seller_username,     // $6
        &lines.title,               // $7
        &lines.price,               // $8
        &lines.quantity,            // $9
        order.buyer_username,       // $10
        order.total_cents,          // $11
        order.currency,             // $12
        order.shipping_address,     // $13
        order.job_id,               // $14
        order.ttl_secs,             // $15
        order.intent_id,            // $16
        order.client_secret,        // $17
        OrderStatus::PendingPayment as OrderStatus, // $18
        JobStatus::Succeeded.as_str(),              // $19
        finished,                                   // $20
        JobStatus::Running.as_str(),                // $21
        lease.as_secs_f64()                         // $22
    )
    .fetch_optional(conn)
    .await?)
}
