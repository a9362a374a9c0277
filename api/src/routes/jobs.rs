//! Job status, read from Postgres (never from queue metadata), with optional long-polling.

use std::time::Duration;

use chrono::{DateTime, Utc};
use poem_openapi::{
    Object, OpenApi,
    param::{Path, Query},
    payload::Json,
};
use serde_json::Value;
use shared::db::{self, jobs::JobRow};
use uuid::Uuid;

use super::Tag;
use crate::{AppState, error::ApiError, security::BearerAuth};

pub struct JobsApi {
    pub state: AppState,
}

/// Why a job failed.
#[derive(Object)]
struct JobError {
    /// e.g. `out_of_stock`, `payment_failed`.
    code: String,
    message: String,
}

/// A background job.
#[derive(Object)]
struct Job {
    id: Uuid,
    /// `checkout`, `geocode_address`, ...
    kind: String,
    /// `queued`, `running`, `succeeded` or `failed`.
    status: String,
    attempts: i32,
    /// On success; checkout: `{order_id, client_secret}`; geocode_address:
    /// `{address_id, status}`.
    result: Option<Value>,
    /// On failure.
    error: Option<JobError>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl From<JobRow> for Job {
    fn from(j: JobRow) -> Self {
        // Only a failed job shows an error; a retrying one keeps its last error to itself.
        let error = (j.status == "failed").then(|| JobError {
            code: j.error_code.unwrap_or_else(|| "failed".into()),
            message: j.error_message.unwrap_or_default(),
        });
        Self {
            id: j.id,
            kind: j.kind,
            status: j.status,
            attempts: j.attempts,
            result: j.result,
            error,
            created_at: j.created_at,
            updated_at: j.updated_at,
        }
    }
}

/// Longest long-poll a client may ask for.
const MAX_WAIT_SECS: u64 = 30;

#[OpenApi(prefix_path = "/api/v1/jobs", tag = "Tag::Jobs")]
impl JobsApi {
    /// A job's state. With `wait`, answers as soon as the job finishes or after `wait` seconds.
    #[oai(path = "/:id", method = "get", operation_id = "get_job")]
    async fn get(
        &self,
        auth: BearerAuth,
        id: Path<Uuid>,
        /// Seconds to wait for a final state (0–30).
        wait: Query<Option<u64>>,
    ) -> Result<Json<Job>, ApiError> {
        let user = self.state.user(auth.token()).await?;
        let wait = wait.0.unwrap_or(0);
        if wait > MAX_WAIT_SECS {
            return Err(shared::domain::ValidationErrors::single(
                "wait",
                "must be between 0 and 30",
            )
            .into());
        }
        let mut waiting = self.state.job_waiter.register(id.0);
        let job = self.load(id.0, user.id).await?;
        if job.is_final() || wait == 0 {
            return Ok(Json(job.into()));
        }
        waiting.wait(Duration::from_secs(wait)).await;
        Ok(Json(self.load(id.0, user.id).await?.into()))
    }
}

impl JobsApi {
    /// The job if `owner` owns it; 404 otherwise (not 403: ids are not disclosed).
    async fn load(&self, id: Uuid, owner: Uuid) -> Result<JobRow, ApiError> {
        let mut conn = self.state.pool.acquire().await?;
        db::jobs::find(&mut conn, id)
            .await?
            .filter(|j| j.owner_id == Some(owner))
            .ok_or_else(|| ApiError::not_found("job"))
    }
}
