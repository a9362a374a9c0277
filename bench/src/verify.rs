//! After the phase, the truth from Postgres (orders against stock, job states, server-side
//! timings) and the stock gate's counters from Redis.

use std::collections::BTreeMap;

use anyhow::Context;
use serde::Serialize;
use sqlx::PgPool;
use uuid::Uuid;

use crate::stats::Latency;

/// Stock integrity over the scenario's listings.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Integrity {
    pub listings: usize,
    /// Σ quantity.
    pub units: i64,
    /// Σ reserved.
    pub reserved: i64,
    /// Orders of the scenario's buyers (any status).
    pub orders: i64,
    /// Units in orders that hold stock (`pending_payment` or `paid`).
    pub ordered_units: i64,
    /// Σ over listings of max(0, ordered units − units the listing had): must be 0. Paid units
    /// have left `quantity`, so this is max(0, pending units − quantity).
    pub oversell_units: i64,
    /// Listings whose `reserved` exceeds `quantity` (the CHECK constraint should make this 0).
    pub reserved_over_quantity: usize,
    /// Listings where `reserved` differs from the units of their `pending_payment` orders.
    pub reserved_mismatch: usize,
    /// Σ over listings of |gate counter − (quantity − reserved)|, where a counter exists.
    pub gate_drift_units: i64,
    /// Listings that were bought from but have no gate counter in Redis.
    pub gate_counters_missing: usize,
}

/// Job states and server-side timings of the scenario's checkout jobs.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Jobs {
    /// status → count.
    pub by_status: BTreeMap<String, i64>,
    /// error code → count (failed jobs).
    pub errors: BTreeMap<String, i64>,
    /// Jobs that needed more than one attempt.
    pub retried: i64,
    /// `orders.created_at − jobs.created_at`: queue wait + claim, until the reservation began.
    pub pickup_to_order_ms: Latency,
    /// `jobs.finished_at − orders.created_at`: reservation, payment intent, completion.
    pub order_to_finished_ms: Latency,
    /// `jobs.finished_at − jobs.created_at` (final jobs).
    pub created_to_finished_ms: Latency,
}

/// Per job: pickup → order, order → finished, created → finished (ms; null when not reached).
type Timings = (Option<f64>, Option<f64>, Option<f64>);

#[derive(sqlx::FromRow)]
struct ListingState {
    id: Uuid,
    quantity: i32,
    reserved: i32,
    /// Units in `pending_payment` orders (these hold `reserved`).
    pending: i64,
    /// Units in `paid` orders (these left `quantity` when paid).
    paid: i64,
}

/// Reads stock integrity for `listings`, whose gate counters live under `{prefix}:gate:{id}`.
pub(crate) async fn integrity(
    pool: &PgPool,
    redis_url: &str,
    prefix: &str,
    listings: &[Uuid],
    buyers: &[Uuid],
) -> anyhow::Result<Integrity> {
    let rows: Vec<ListingState> = sqlx::query_as(
        "SELECT l.id, l.quantity, l.reserved,
                COALESCE(sum(ol.quantity) FILTER (WHERE o.status = 'pending_payment'), 0)::bigint AS pending,
                COALESCE(sum(ol.quantity) FILTER (WHERE o.status = 'paid'), 0)::bigint AS paid
         FROM listings l
         LEFT JOIN order_lines ol ON ol.listing_id = l.id
         LEFT JOIN orders o ON o.id = ol.order_id
         WHERE l.id = ANY($1)
         GROUP BY l.id ORDER BY l.id",
    )
    .bind(listings)
    .fetch_all(pool)
    .await
    .context("failed to read listing stock")?;
    let orders: i64 = sqlx::query_scalar("SELECT count(*) FROM orders WHERE buyer_id = ANY($1)")
        .bind(buyers)
        .fetch_one(pool)
        .await?;
    let gate = gate_counters(
        redis_url,
        prefix,
        &rows.iter().map(|r| r.id).collect::<Vec<_>>(),
    )
    .await
    .context("failed to read the stock gate counters from Redis")?;
    let mut out = Integrity {
        listings: rows.len(),
        units: 0,
        reserved: 0,
        orders,
        ordered_units: 0,
        oversell_units: 0,
        reserved_over_quantity: 0,
        reserved_mismatch: 0,
        gate_drift_units: 0,
        gate_counters_missing: 0,
    };
    for (r, counter) in rows.iter().zip(gate) {
        let (quantity, reserved) = (i64::from(r.quantity), i64::from(r.reserved));
        out.units += quantity;
        out.reserved += reserved;
        let ordered = r.pending + r.paid;
        out.ordered_units += ordered;
        // A paid unit has left `quantity`: the listing started with `quantity + paid` units,
        // so `pending + paid` held units oversell by `pending - quantity` (no refunds here).
        out.oversell_units += (r.pending - quantity).max(0);
        out.reserved_over_quantity += usize::from(reserved > quantity);
        // Listings are fresh per scenario and nothing expires or is refunded during it:
        // `reserved` is exactly the units of the pending orders.
        out.reserved_mismatch += usize::from(reserved != r.pending);
        match counter {
            Some(c) => out.gate_drift_units += (c - (quantity - reserved)).abs(),
            // A listing nobody tried to buy never had its counter loaded: that is fine.
            None => out.gate_counters_missing += usize::from(ordered > 0),
        }
    }
    Ok(out)
}

async fn gate_counters(
    redis_url: &str,
    prefix: &str,
    listings: &[Uuid],
) -> anyhow::Result<Vec<Option<i64>>> {
    if listings.is_empty() {
        return Ok(Vec::new());
    }
    let client = redis::Client::open(redis_url)?;
    let mut conn = client.get_multiplexed_async_connection().await?;
    let keys: Vec<String> = listings
        .iter()
        .map(|id| format!("{prefix}:gate:{id}"))
        .collect();
    Ok(redis::cmd("MGET").arg(&keys).query_async(&mut conn).await?)
}

/// Reads the states and server-side timings of the checkout jobs of `buyers`.
pub(crate) async fn jobs(pool: &PgPool, buyers: &[Uuid]) -> anyhow::Result<Jobs> {
    let by_status: Vec<(String, i64)> = sqlx::query_as(
        "SELECT status, count(*) FROM jobs WHERE kind = 'checkout' AND owner_id = ANY($1) GROUP BY status",
    )
    .bind(buyers)
    .fetch_all(pool)
    .await?;
    let errors: Vec<(String, i64)> = sqlx::query_as(
        "SELECT COALESCE(error_code, '?'), count(*) FROM jobs
         WHERE kind = 'checkout' AND owner_id = ANY($1) AND status = 'failed' GROUP BY 1",
    )
    .bind(buyers)
    .fetch_all(pool)
    .await?;
    let retried: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM jobs WHERE kind = 'checkout' AND owner_id = ANY($1) AND attempts > 1",
    )
    .bind(buyers)
    .fetch_one(pool)
    .await?;
    let timings: Vec<Timings> = sqlx::query_as(
        "SELECT (extract(epoch FROM o.created_at - j.created_at) * 1000)::float8,
                (extract(epoch FROM j.finished_at - o.created_at) * 1000)::float8,
                (extract(epoch FROM j.finished_at - j.created_at) * 1000)::float8
         FROM jobs j LEFT JOIN orders o ON o.checkout_job_id = j.id
         WHERE j.kind = 'checkout' AND j.owner_id = ANY($1)",
    )
    .bind(buyers)
    .fetch_all(pool)
    .await?;
    let column = |f: fn(&Timings) -> Option<f64>| {
        Latency::of_ms(&mut timings.iter().filter_map(f).collect::<Vec<_>>())
    };
    Ok(Jobs {
        by_status: by_status.into_iter().collect(),
        errors: errors.into_iter().collect(),
        retried,
        pickup_to_order_ms: column(|t| t.0),
        order_to_finished_ms: column(|t| t.1),
        created_to_finished_ms: column(|t| t.2),
    })
}

/// Cluster-wide Postgres counters that need no statistics flush: the next transaction id (write
/// transactions) and the WAL position.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PgCounters {
    xid: i64,
    wal_bytes: f64,
}

/// Reads the counters now (without taking a transaction id itself).
pub(crate) async fn pg_counters(pool: &PgPool) -> anyhow::Result<PgCounters> {
    let (xid, wal_bytes): (i64, f64) = sqlx::query_as(
        "SELECT pg_snapshot_xmax(pg_current_snapshot())::text::bigint,
                pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::float8",
    )
    .fetch_one(pool)
    .await?;
    Ok(PgCounters { xid, wal_bytes })
}

/// Postgres work per completed checkout (cluster-wide: other databases' writes count too).
#[derive(Debug, Clone, Serialize)]
pub(crate) struct PgWork {
    pub write_transactions: i64,
    pub wal_bytes: f64,
    pub write_transactions_per_checkout: f64,
    pub wal_bytes_per_checkout: f64,
}

/// The work between two readings, per completed checkout.
pub(crate) fn pg_work(before: PgCounters, after: PgCounters, completed: usize) -> PgWork {
    let n = completed.max(1) as f64;
    let write_transactions = after.xid - before.xid;
    let wal_bytes = after.wal_bytes - before.wal_bytes;
    PgWork {
        write_transactions,
        wal_bytes,
        write_transactions_per_checkout: write_transactions as f64 / n,
        wal_bytes_per_checkout: wal_bytes / n,
    }
}

/// After `paid` or `webhooks`: every order paid once, stock and ledger settled, every event
/// processed. Each field named `*_wrong`/`*_not_*`/`unprocessed_*` must be 0.
#[derive(Debug, Clone, Serialize, Default)]
pub(crate) struct Settlement {
    /// Orders of the measured buyers, by status.
    pub orders_by_status: BTreeMap<String, i64>,
    pub orders: i64,
    /// Orders not `paid` (or without `paid_at`).
    pub orders_not_paid: i64,
    /// Buyers with other than exactly one order.
    pub buyers_without_exactly_one_order: i64,
    /// Orders with other than exactly one webhook event that applied the payment (processed
    /// without a note), or with a duplicate/late-refund trace.
    pub orders_not_settled_by_exactly_one_event: i64,
    /// Units sold (lines of paid orders).
    pub sold_units: i64,
    /// Listings whose `reserved` is not 0 (every order was paid).
    pub listings_reserved_not_zero: usize,
    /// Listings whose `quantity` is not their initial quantity minus the units sold.
    pub listings_quantity_wrong: usize,
    /// Σ initial quantity − Σ quantity now (must equal `sold_units`).
    pub quantity_reduced_by: i64,
    /// Order lines of the measured orders.
    pub lines: i64,
    /// Lines without exactly one `sale` entry of `unit price × quantity`.
    pub lines_sale_entry_wrong: i64,
    /// Lines without exactly one `platform_fee` entry (negative, rounded down).
    pub lines_fee_entry_wrong: i64,
    /// Ledger entries of the measured orders other than `sale` / `platform_fee`.
    pub other_ledger_entries: i64,
    /// Events about the measured orders' intents still unprocessed.
    pub unprocessed_webhook_events: i64,
    /// The same across the whole database (the warm-up's and any other run's included).
    pub unprocessed_webhook_events_anywhere: i64,
    /// Events about the measured orders' intents that were processed with a note (ignored,
    /// given up, already settled) — duplicates sent on purpose show up here.
    pub events_with_note: BTreeMap<String, i64>,
}

/// Reads the settlement of `buyers`' orders over `listings`, which started with `initial`
/// units each (same order), at `fee_bps` platform fee.
pub(crate) async fn settlement(
    pool: &PgPool,
    buyers: &[Uuid],
    listings: &[Uuid],
    initial: &[i64],
    fee_bps: i64,
) -> anyhow::Result<Settlement> {
    let mut s = Settlement::default();
    let by_status: Vec<(String, i64)> = sqlx::query_as(
        "SELECT status, count(*) FROM orders WHERE buyer_id = ANY($1) GROUP BY status",
    )
    .bind(buyers)
    .fetch_all(pool)
    .await?;
    s.orders = by_status.iter().map(|r| r.1).sum();
    s.orders_by_status = by_status.into_iter().collect();
    s.orders_not_paid = sqlx::query_scalar(
        "SELECT count(*) FROM orders WHERE buyer_id = ANY($1) AND (status <> 'paid' OR paid_at IS NULL)",
    )
    .bind(buyers)
    .fetch_one(pool)
    .await?;
    s.buyers_without_exactly_one_order = sqlx::query_scalar(
        "SELECT count(*) FROM unnest($1::uuid[]) AS b(id)
         WHERE (SELECT count(*) FROM orders o WHERE o.buyer_id = b.id) <> 1",
    )
    .bind(buyers)
    .fetch_one(pool)
    .await?;
    s.orders_not_settled_by_exactly_one_event = sqlx::query_scalar(
        "SELECT count(*) FROM orders o
         WHERE o.buyer_id = ANY($1)
           AND (SELECT count(*) FROM webhook_events e
                WHERE e.object_id = o.payment_intent_id
                  AND e.processed_at IS NOT NULL AND e.error IS NULL) <> 1",
    )
    .bind(buyers)
    .fetch_one(pool)
    .await?;
    let notes: Vec<(String, i64)> = sqlx::query_as(
        "SELECT e.error, count(*) FROM webhook_events e JOIN orders o ON o.payment_intent_id = e.object_id
         WHERE o.buyer_id = ANY($1) AND e.error IS NOT NULL GROUP BY 1",
    )
    .bind(buyers)
    .fetch_all(pool)
    .await?;
    s.events_with_note = notes.into_iter().collect();
    s.unprocessed_webhook_events = sqlx::query_scalar(
        "SELECT count(*) FROM webhook_events e JOIN orders o ON o.payment_intent_id = e.object_id
         WHERE o.buyer_id = ANY($1) AND e.processed_at IS NULL",
    )
    .bind(buyers)
    .fetch_one(pool)
    .await?;
    s.unprocessed_webhook_events_anywhere =
        sqlx::query_scalar("SELECT count(*) FROM webhook_events WHERE processed_at IS NULL")
            .fetch_one(pool)
            .await?;

    // Stock: per listing, the units sold to these buyers against what it started with.
    let stock: Vec<(Uuid, i32, i32, i64)> = sqlx::query_as(
        "SELECT l.id, l.quantity, l.reserved,
                COALESCE((SELECT sum(ol.quantity) FROM order_lines ol JOIN orders o ON o.id = ol.order_id
                          WHERE ol.listing_id = l.id AND o.status = 'paid'), 0)::bigint
         FROM listings l WHERE l.id = ANY($1)",
    )
    .bind(listings)
    .fetch_all(pool)
    .await?;
    let start: std::collections::HashMap<Uuid, i64> = listings
        .iter()
        .copied()
        .zip(initial.iter().copied())
        .collect();
    for (id, quantity, reserved, sold) in stock {
        let initial = start.get(&id).copied().unwrap_or_default();
        s.sold_units += sold;
        s.quantity_reduced_by += initial - i64::from(quantity);
        s.listings_reserved_not_zero += usize::from(reserved != 0);
        s.listings_quantity_wrong += usize::from(initial - i64::from(quantity) != sold);
    }

    // Ledger: exactly one sale and one fee entry per line, with the right amounts.
    let (lines, sale_wrong, fee_wrong, other): (i64, i64, i64, i64) = sqlx::query_as(
        "WITH lines AS (
             SELECT ol.id, ol.unit_price_cents * ol.quantity AS total FROM order_lines ol
             JOIN orders o ON o.id = ol.order_id WHERE o.buyer_id = ANY($1)),
         per_line AS (
             SELECT l.id, l.total,
                    count(*) FILTER (WHERE e.kind = 'sale') AS sales,
                    count(*) FILTER (WHERE e.kind = 'sale' AND e.amount_cents = l.total) AS sales_right,
                    count(*) FILTER (WHERE e.kind = 'platform_fee') AS fees,
                    count(*) FILTER (WHERE e.kind = 'platform_fee' AND e.amount_cents = -((l.total * $2) / 10000)) AS fees_right,
                    count(*) FILTER (WHERE e.kind NOT IN ('sale', 'platform_fee')) AS other
             FROM lines l LEFT JOIN ledger_entries e ON e.order_line_id = l.id
             GROUP BY l.id, l.total)
         SELECT count(*),
                count(*) FILTER (WHERE sales <> 1 OR sales_right <> 1),
                count(*) FILTER (WHERE fees <> 1 OR fees_right <> 1),
                COALESCE(sum(other), 0)::bigint
         FROM per_line",
    )
    .bind(buyers)
    .bind(fee_bps)
    .fetch_one(pool)
    .await?;
    s.lines = lines;
    s.lines_sale_entry_wrong = sale_wrong;
    s.lines_fee_entry_wrong = fee_wrong;
    s.other_ledger_entries = other;
    Ok(s)
}
