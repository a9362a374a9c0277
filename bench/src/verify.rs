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
    /// Σ over listings of max(0, ordered units − quantity): must be 0.
    pub oversell_units: i64,
    /// Listings whose `reserved` exceeds `quantity` (the CHECK constraint should make this 0).
    pub reserved_over_quantity: usize,
    /// Listings where `reserved` differs from the units of their pending orders.
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
    ordered: i64,
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
                COALESCE(sum(ol.quantity) FILTER (WHERE o.status IN ('pending_payment', 'paid')), 0)::bigint AS ordered
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
        out.ordered_units += r.ordered;
        out.oversell_units += (r.ordered - quantity).max(0);
        out.reserved_over_quantity += usize::from(reserved > quantity);
        // Listings are fresh per scenario and nothing is paid or expired during it.
        out.reserved_mismatch += usize::from(reserved != r.ordered);
        match counter {
            Some(c) => out.gate_drift_units += (c - (quantity - reserved)).abs(),
            // A listing nobody tried to buy never had its counter loaded: that is fine.
            None => out.gate_counters_missing += usize::from(r.ordered > 0),
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
