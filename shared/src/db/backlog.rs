//! SQL of the queue backlog metrics: the work PostgreSQL holds that no worker has taken yet.

use sqlx::PgConnection;

use super::StoreError;

/// The work waiting in one queue.
#[derive(Debug, Clone, PartialEq)]
pub struct Waiting {
    /// A job kind (its queue), or the queue of webhook events.
    pub queue: String,
    /// How many items wait.
    pub items: i64,
    /// Seconds since the oldest of them was created, by the database's clock (the clock that
    /// stamped it); 0 when none.
    pub oldest_age_seconds: f64,
}

/// `jobs` rows still `queued` (never taken, or back for a retry), per kind that has any, and
/// the unprocessed webhook events, as the queue `webhook_queue` (always one row, 0 when
/// none). One statement, on the partial indexes of waiting work (`jobs_pending_idx`,
/// `webhook_events_unprocessed_idx`): it reads only waiting rows, never the finished history.
#[tracing::instrument(skip_all)]
pub async fn waiting(
    conn: &mut PgConnection,
    webhook_queue: &str,
) -> Result<Vec<Waiting>, StoreError> {
    Ok(sqlx::query_as!(
        Waiting,
        r#"SELECT kind AS "queue!",
                  count(*) AS "items!",
                  greatest(extract(epoch FROM now() - min(created_at))::float8, 0)
                    AS "oldest_age_seconds!"
           FROM jobs
           WHERE status = 'queued'
           GROUP BY kind
           UNION ALL
           SELECT $1::text,
                  count(*),
                  greatest(extract(epoch FROM now() - min(received_at))::float8, 0)
           FROM webhook_events
           WHERE processed_at IS NULL"#,
        webhook_queue
    )
    .fetch_all(conn)
    .await?)
}
