//! The `jobs` table: the user-visible record of background work (Redis only carries the id).

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::PgConnection;
use uuid::Uuid;

use super::StoreError;
use crate::domain::JobStatus;

/// A job row.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct JobRow {
    /// UUIDv7.
    pub id: Uuid,
    /// Job kind (`checkout`, ...).
    pub kind: String,
    /// The user who asked for it (`None` for system jobs).
    pub owner_id: Option<Uuid>,
    /// Where the job is.
    pub status: JobStatus,
    /// Attempts started so far.
    pub attempts: i32,
    /// Cap on attempts.
    pub max_attempts: i32,
    /// Input captured when the job was accepted.
    pub payload: Value,
    /// Output on success.
    pub result: Option<Value>,
    /// Failure code.
    pub error_code: Option<String>,
    /// Failure message.
    pub error_message: Option<String>,
    /// Hash of the request that created the job, for idempotency-key reuse checks.
    pub request_fingerprint: Option<String>,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

impl JobRow {
    /// Whether the job reached `succeeded` or `failed`.
    pub fn is_final(&self) -> bool {
        self.status.is_final()
    }
}

/// What a new job row holds.
#[derive(Debug, Clone)]
pub struct NewJob<'a> {
    /// Job kind.
    pub kind: &'a str,
    /// Requesting user.
    pub owner_id: Option<Uuid>,
    /// Captured input.
    pub payload: &'a Value,
    /// Client idempotency key (unique per owner and kind).
    pub idempotency_key: Option<&'a str>,
    /// Hash of the request body.
    pub request_fingerprint: Option<&'a str>,
    /// Attempt cap.
    pub max_attempts: i32,
}

/// Inserts a queued job. Returns `None` when the owner already has a job of this kind with the
/// same idempotency key (the caller then answers with that job).
#[tracing::instrument(skip_all, fields(job.kind = job.kind))]
pub async fn insert(
    conn: &mut PgConnection,
    job: &NewJob<'_>,
) -> Result<Option<JobRow>, StoreError> {
    // The trace of the request that creates the job; the worker continues it.
    let trace_context = crate::telemetry::trace_context();
    Ok(sqlx::query_as!(
        JobRow,
        r#"INSERT INTO jobs (id, kind, owner_id, payload, idempotency_key, request_fingerprint, max_attempts,
                           trace_context)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
         ON CONFLICT ON CONSTRAINT jobs_owner_kind_idempotency_key DO NOTHING
         RETURNING id, kind, owner_id, status AS "status: JobStatus", attempts, max_attempts, payload,
                   result, error_code, error_message, request_fingerprint, created_at, updated_at"#,
        Uuid::now_v7(),
        job.kind,
        job.owner_id,
        job.payload,
        job.idempotency_key,
        job.request_fingerprint,
        job.max_attempts,
        trace_context
    )
    .fetch_optional(conn)
    .await?)
}

/// A job by id.
#[tracing::instrument(skip_all, fields(job.id = %id))]
pub async fn find(conn: &mut PgConnection, id: Uuid) -> Result<Option<JobRow>, StoreError> {
    Ok(sqlx::query_as!(
        JobRow,
        r#"SELECT id, kind, owner_id, status AS "status: JobStatus", attempts, max_attempts, payload,
                  result, error_code, error_message, request_fingerprint, created_at, updated_at
           FROM jobs WHERE id = $1"#,
        id
    )
    .fetch_optional(conn)
    .await?)
}

/// What a delivery found when it tried to claim its job.
#[derive(Debug)]
pub enum Claim {
    /// The delivery holds the job now, for one counted attempt.
    Claimed(Box<JobRow>),
    /// Another delivery holds a live lease on it (or is just handing it back): try again later,
    /// since that holder may be gone (a worker cut off from PostgreSQL keeps its lease until it
    /// runs out).
    Busy,
    /// Finished, or no such job: nothing to do.
    Done,
}

/// Claims a job for one attempt: `queued` jobs, or `running` ones whose lease expired (their
/// worker died). Counts the attempt and leases the job for `lease`, which the worker keeps
/// extending while the handler runs.
#[tracing::instrument(skip_all, fields(job.id = %id))]
pub async fn claim(
    conn: &mut PgConnection,
    id: Uuid,
    kind: &str,
    lease: std::time::Duration,
) -> Result<Claim, StoreError> {
    let claimed = sqlx::query_as!(
        JobRow,
        r#"UPDATE jobs SET status = $4, attempts = attempts + 1, retry_at = NULL,
                lease_expires_at = now() + make_interval(secs => $3)
         WHERE id = $1 AND kind = $2
           AND (status = 'queued' OR (status = 'running' AND lease_expires_at < now()))
         RETURNING id, kind, owner_id, status AS "status: JobStatus", attempts, max_attempts, payload,
                   result, error_code, error_message, request_fingerprint, created_at, updated_at"#,
        id,
        kind,
        lease.as_secs_f64(),
        JobStatus::Running as JobStatus
    )
    .fetch_optional(&mut *conn)
    .await?;
    if let Some(job) = claimed {
        return Ok(Claim::Claimed(Box::new(job)));
    }
    // The rare path (a duplicate delivery): say why, in a second statement.
    let pending = sqlx::query_scalar!(
        r#"SELECT status IN ('queued', 'running') AS "pending!" FROM jobs WHERE id = $1 AND kind = $2"#,
        id,
        kind
    )
    .fetch_optional(conn)
    .await?;
    Ok(match pending {
        Some(true) => Claim::Busy,
        Some(false) | None => Claim::Done,
    })
}

/// Hands a claimed job back (`queued`, due again after `retry_in`) after its attempt failed
/// on a database or Redis error, so the next delivery can claim it at once instead of waiting
/// for the lease to run out. Only the claim of attempt `attempt` is released: if that lease
/// lapsed and another delivery holds the job now, nothing changes. Returns whether it was
/// released.
#[tracing::instrument(skip_all, fields(job.id = %id))]
pub async fn release(
    conn: &mut PgConnection,
    id: Uuid,
    attempt: i32,
    retry_in: std::time::Duration,
) -> Result<bool, StoreError> {
    let done = sqlx::query!(
        "UPDATE jobs SET status = $3, lease_expires_at = NULL,
                retry_at = now() + make_interval(secs => $4)
         WHERE id = $1 AND attempts = $2 AND status = 'running'",
        id,
        attempt,
        JobStatus::Queued as JobStatus,
        retry_in.as_secs_f64()
    )
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Marks a claimed job `succeeded` with its result.
#[tracing::instrument(skip_all, fields(job.id = %id))]
pub async fn succeed(conn: &mut PgConnection, id: Uuid, result: &Value) -> Result<(), StoreError> {
    sqlx::query!(
        "UPDATE jobs SET status = $3, result = $2, error_code = NULL, error_message = NULL,
                lease_expires_at = NULL, finished_at = now()
         WHERE id = $1",
        id,
        result,
        JobStatus::Succeeded as JobStatus
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Marks a job `failed` for good.
#[tracing::instrument(skip_all, fields(job.id = %id))]
pub async fn fail(
    conn: &mut PgConnection,
    id: Uuid,
    code: &str,
    message: &str,
) -> Result<(), StoreError> {
    sqlx::query!(
        "UPDATE jobs SET status = $4, error_code = $2, error_message = $3,
                lease_expires_at = NULL, finished_at = now()
         WHERE id = $1",
        id,
        code,
        message,
        JobStatus::Failed as JobStatus
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Puts a job back to `queued` after a retryable failure, recording why; its retry is due
/// after `retry_in` (the sweeper re-pushes it if that retry's task is lost).
#[tracing::instrument(skip_all, fields(job.id = %id))]
pub async fn requeue(
    conn: &mut PgConnection,
    id: Uuid,
    code: &str,
    message: &str,
    retry_in: std::time::Duration,
) -> Result<(), StoreError> {
    sqlx::query!(
        "UPDATE jobs SET status = $4, error_code = $2, error_message = $3, lease_expires_at = NULL,
                retry_at = now() + make_interval(secs => $5)
         WHERE id = $1 AND status = 'running'",
        id,
        code,
        message,
        JobStatus::Queued as JobStatus,
        retry_in.as_secs_f64()
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Puts a claimed job back to `queued` without counting the attempt: it never reached the
/// external service (e.g. it had to wait for a rate-limit slot), so it must not use up the cap.
/// Due again after `retry_in`.
#[tracing::instrument(skip_all, fields(job.id = %id))]
pub async fn defer(
    conn: &mut PgConnection,
    id: Uuid,
    reason: &str,
    retry_in: std::time::Duration,
) -> Result<(), StoreError> {
    sqlx::query!(
        "UPDATE jobs SET status = $3, attempts = greatest(attempts - 1, 0),
                error_code = $2, error_message = NULL, lease_expires_at = NULL,
                retry_at = now() + make_interval(secs => $4)
         WHERE id = $1 AND status = 'running'",
        id,
        reason,
        JobStatus::Queued as JobStatus,
        retry_in.as_secs_f64()
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Ids of queued jobs of `kind`, oldest first (tests and the sweeper run them).
#[tracing::instrument(skip_all)]
pub async fn queued_ids(conn: &mut PgConnection, kind: &str) -> Result<Vec<Uuid>, StoreError> {
    Ok(sqlx::query_scalar!(
        "SELECT id FROM jobs WHERE kind = $1 AND status = 'queued' ORDER BY id",
        kind
    )
    .fetch_all(conn)
    .await?)
}

/// Extends the lease of a job a live worker is running (see `worker::lease`): only while it
/// is `running` and the lease has not run out, so a late renewal never revives a lease another
/// worker may already have taken over. Returns whether it was extended.
#[tracing::instrument(level = "debug", skip_all, fields(job.id = %id))]
pub async fn renew_lease(
    conn: &mut PgConnection,
    id: Uuid,
    lease: std::time::Duration,
) -> Result<bool, StoreError> {
    let done = sqlx::query!(
        "UPDATE jobs SET lease_expires_at = now() + make_interval(secs => $2)
         WHERE id = $1 AND status = 'running' AND lease_expires_at > now()",
        id,
        lease.as_secs_f64()
    )
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// The trace a job was created in (see `telemetry::trace_context`), if any.
#[tracing::instrument(level = "debug", skip_all, fields(job.id = %id))]
pub async fn trace_context(conn: &mut PgConnection, id: Uuid) -> Result<Option<Value>, StoreError> {
    Ok(
        sqlx::query_scalar!("SELECT trace_context FROM jobs WHERE id = $1", id)
            .fetch_optional(conn)
            .await?
            .flatten(),
    )
}
