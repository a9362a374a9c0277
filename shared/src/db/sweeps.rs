//! SQL of the periodic sweeps: finding work Redis lost, and deleting what is past retention.
//!
//! Every statement handles one bounded batch and commits on its own, so no sweep holds row locks
//! for long or blocks the requests and jobs running next to it.

use std::time::Duration;

use sqlx::PgConnection;
use uuid::Uuid;

use super::StoreError;
use crate::telemetry::trace::TraceId;

/// Jobs whose task Redis probably lost, marked as just re-pushed (`updated_at = now()`) so the
/// next sweep leaves them alone for another grace period. Returns `(id, kind, trace id)`.
///
/// * `queued`: unchanged for `grace`, and past its retry time (`retry_at`, set when an attempt
///   failed and a redelivery was scheduled) by `grace`, so a backoff in progress is left alone;
/// * `running` whose lease ran out `grace` ago: its worker died (a live worker renews it) and
///   apalis' own orphan recovery had its chance.
///
/// `SKIP LOCKED`: a job being claimed right now is not stale.
#[tracing::instrument(skip_all)]
pub async fn mark_stale_jobs(
    conn: &mut PgConnection,
    grace: Duration,
    limit: i64,
) -> Result<Vec<(Uuid, String, Option<TraceId>)>, StoreError> {
    Ok(sqlx::query!(
        "WITH stale AS (
             SELECT id FROM jobs
             WHERE status IN ('queued', 'running')
               AND updated_at < now() - make_interval(secs => $1)
               AND CASE
                     WHEN status = 'running' THEN
                       coalesce(lease_expires_at < now() - make_interval(secs => $1), true)
                     ELSE coalesce(retry_at < now() - make_interval(secs => $1), true)
                   END
             ORDER BY updated_at
             LIMIT $2
             FOR UPDATE SKIP LOCKED)
         UPDATE jobs j SET updated_at = now() FROM stale WHERE j.id = stale.id
         RETURNING j.id, j.kind, j.trace_context->>'trace_id' AS trace_id",
        grace.as_secs_f64(),
        limit
    )
    .fetch_all(conn)
    .await?
    .into_iter()
    .map(|r| (r.id, r.kind, r.trace_id.and_then(|t| t.parse().ok())))
    .collect())
}

/// Unprocessed webhook events whose `payment_event` task Redis probably lost, marked as just
/// re-pushed: unchanged for `grace` and past their retry time (a failed delivery's backoff) by
/// `grace`. A delivery cut off mid-way (its worker killed) recorded no retry, so its event is
/// found after `grace` like a never-delivered one. Returns the event ids.
#[tracing::instrument(skip_all)]
pub async fn mark_stale_webhook_events(
    conn: &mut PgConnection,
    grace: Duration,
    limit: i64,
) -> Result<Vec<String>, StoreError> {
    Ok(sqlx::query_scalar!(
        "WITH stale AS (
             SELECT id FROM webhook_events
             WHERE processed_at IS NULL
               AND updated_at < now() - make_interval(secs => $1)
               AND coalesce(retry_at < now() - make_interval(secs => $1), true)
             ORDER BY received_at
             LIMIT $2
             FOR UPDATE SKIP LOCKED)
         UPDATE webhook_events w SET updated_at = now() FROM stale WHERE w.id = stale.id
         RETURNING w.id",
        grace.as_secs_f64(),
        limit
    )
    .fetch_all(conn)
    .await?)
}

/// Hard-deletes up to `limit` listings soft-deleted more than `after` ago. Order lines keep
/// their snapshot (`order_lines.listing_id` becomes NULL); cart lines go with the listing. A
/// listing still holding reserved units (a pending order) waits for that order to close.
#[tracing::instrument(skip_all)]
pub async fn purge_listings(
    conn: &mut PgConnection,
    after: Duration,
    limit: i64,
) -> Result<u64, StoreError> {
    let done = sqlx::query!(
        "DELETE FROM listings WHERE id IN (
             SELECT id FROM listings
             WHERE deleted_at < now() - make_interval(secs => $1) AND reserved = 0
             LIMIT $2)",
        after.as_secs_f64(),
        limit
    )
    .execute(conn)
    .await?;
    Ok(done.rows_affected())
}

/// Hard-deletes up to `limit` users soft-deleted more than `after` ago, with what is only
/// theirs (tokens, addresses, cart, listings: `ON DELETE CASCADE`). Orders, order lines, jobs
/// and ledger entries stay, with the user reference set to NULL; orders keep the buyer's and
/// sellers' names in their snapshot.
#[tracing::instrument(skip_all)]
pub async fn purge_users(
    conn: &mut PgConnection,
    after: Duration,
    limit: i64,
) -> Result<u64, StoreError> {
    let done = sqlx::query!(
        "DELETE FROM users WHERE id IN (
             SELECT id FROM users WHERE deleted_at < now() - make_interval(secs => $1)
             LIMIT $2)",
        after.as_secs_f64(),
        limit
    )
    .execute(conn)
    .await?;
    Ok(done.rows_affected())
}

/// Deletes up to `limit` finished (`succeeded` or `failed`) job rows that finished more than
/// `retention` ago. An order created by a deleted checkout job keeps everything but the link
/// (`orders.checkout_job_id` becomes NULL).
#[tracing::instrument(skip_all)]
pub async fn prune_finished_jobs(
    conn: &mut PgConnection,
    retention: Duration,
    limit: i64,
) -> Result<u64, StoreError> {
    let done = sqlx::query!(
        "DELETE FROM jobs WHERE id IN (
             SELECT id FROM jobs
             WHERE finished_at < now() - make_interval(secs => $1)
               AND status IN ('succeeded', 'failed')
             LIMIT $2)",
        retention.as_secs_f64(),
        limit
    )
    .execute(conn)
    .await?;
    Ok(done.rows_affected())
}
