//! Job status, read from Postgres (never from queue metadata), with optional long-polling.

use std::time::Duration;

use chrono::{DateTime, Utc};
use poem_openapi::{
    Object, OpenApi, Union,
    param::{Path, Query},
    payload::Json,
    types::ParseFromJSON,
};
use shared::{
    db::{self, jobs::JobRow},
    jobs::{self, Job as JobDef},
};
use uuid::Uuid;

use super::Tag;
use crate::{
    AppState,
    error::{ApiError, ErrorCode},
    fields::{Int, int_rule},
    security::BearerAuth,
    statuses::{AddressStatus, JobStatus},
};

int_rule!(
    /// Seconds a long-poll may wait.
    WaitSecs = 0, MAX_WAIT_SECS as i64
);

pub struct JobsApi {
    pub state: AppState,
}

/// Why a job failed.
#[derive(Object)]
struct JobError {
    /// e.g. `out_of_stock`, `payment_failed`, `address_deleted`.
    code: String,
    message: String,
}

/// What a checkout made.
#[derive(Object)]
struct CheckoutResult {
    order_id: Uuid,
    /// For Stripe.js (a local stand-in in development payment mode).
    #[oai(nullable)]
    client_secret: Option<String>,
}

/// What geocoding made of an address.
#[derive(Object)]
struct GeocodeResult {
    address_id: Uuid,
    status: AddressStatus,
}

/// What a refund sent back.
#[derive(Object)]
struct RefundResult {
    order_id: Uuid,
    /// Stripe's refund id; null when nothing was left to refund.
    #[oai(nullable)]
    refund_id: Option<String>,
    amount_cents: i64,
}

/// Declares the job object of each kind: the same fields, with the result that kind produces.
macro_rules! job_kind {
    ($(#[$doc:meta])* $name:ident, $result:ty) => {
        $(#[$doc])*
        #[derive(Object)]
        struct $name {
            id: Uuid,
            status: JobStatus,
            attempts: i32,
            /// Set once `status` is `succeeded`.
            #[oai(nullable)]
            result: Option<$result>,
            /// Set once `status` is `failed`.
            #[oai(nullable)]
            error: Option<JobError>,
            created_at: DateTime<Utc>,
            updated_at: DateTime<Utc>,
        }

        impl TryFrom<JobRow> for $name {
            type Error = ApiError;

            fn try_from(j: JobRow) -> Result<Self, ApiError> {
                let status = JobStatus::from(j.status);
                // Only a failed job shows an error; a retrying one keeps its last error to itself.
                let error = (status == JobStatus::Failed).then(|| JobError {
                    code: j.error_code.unwrap_or_else(|| "failed".into()),
                    message: j.error_message.unwrap_or_default(),
                });
                let result = match j.result {
                    Some(value) if status == JobStatus::Succeeded => Some(
                        <$result>::parse_from_json(Some(value))
                            .map_err(|e| ApiError::internal(&StoredResult(e.into_message())))?,
                    ),
                    _ => None,
                };
                Ok(Self {
                    id: j.id,
                    status,
                    attempts: j.attempts,
                    result,
                    error,
                    created_at: j.created_at,
                    updated_at: j.updated_at,
                })
            }
        }
    };
}

job_kind!(
    /// A checkout of the cart.
    CheckoutJob,
    CheckoutResult
);
job_kind!(
    /// The validation of an address.
    GeocodeJob,
    GeocodeResult
);
job_kind!(
    /// A refund.
    RefundJob,
    RefundResult
);

/// A background job a user asked for, told apart by `kind`.
#[derive(Union)]
#[oai(discriminator_name = "kind", one_of)]
enum Job {
    #[oai(mapping = "checkout")]
    Checkout(CheckoutJob),
    #[oai(mapping = "geocode_address")]
    GeocodeAddress(GeocodeJob),
    #[oai(mapping = "refund_order")]
    RefundOrder(RefundJob),
}

/// A stored result that does not have its kind's shape.
#[derive(Debug, thiserror::Error)]
#[error("stored job result does not match its kind: {0}")]
struct StoredResult(String);

impl TryFrom<JobRow> for Job {
    type Error = ApiError;

    fn try_from(j: JobRow) -> Result<Self, ApiError> {
        Ok(match j.kind.as_str() {
            <jobs::Checkout as JobDef>::NAME => Self::Checkout(j.try_into()?),
            <jobs::GeocodeAddress as JobDef>::NAME => Self::GeocodeAddress(j.try_into()?),
            <jobs::RefundOrder as JobDef>::NAME => Self::RefundOrder(j.try_into()?),
            // Only these kinds have an owner; any other is nobody's to see.
            _ => return Err(ApiError::not_found(ErrorCode::JobNotFound)),
        })
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
        wait: Query<Option<Int<WaitSecs>>>,
    ) -> Result<Json<Job>, ApiError> {
        let user = self.state.user(auth.token()).await?;
        let wait = wait.0.map_or(0, |w| w.get());
        let Some(wait) = u64::try_from(wait).ok().filter(|w| *w <= MAX_WAIT_SECS) else {
            return Err(shared::domain::ValidationErrors::single(
                "wait",
                "must be between 0 and 30",
            )
            .into());
        };
        let mut waiting = self.state.job_waiter.register(id.0);
        let job = self.load(id.0, user.id).await?;
        if job.is_final() || wait == 0 {
            return Ok(Json(job.try_into()?));
        }
        waiting.wait(Duration::from_secs(wait)).await;
        Ok(Json(self.load(id.0, user.id).await?.try_into()?))
    }
}

impl JobsApi {
    /// The job if `owner` owns it; 404 otherwise (not 403: ids are not disclosed).
    async fn load(&self, id: Uuid, owner: Uuid) -> Result<JobRow, ApiError> {
        let mut conn = self.state.pool.acquire().await?;
        db::jobs::find(&mut conn, id)
            .await?
            .filter(|j| j.owner_id == Some(owner))
            .ok_or_else(|| ApiError::not_found(ErrorCode::JobNotFound))
    }
}
