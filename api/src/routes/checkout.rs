//! Checkout: accepted at once (202) and processed by the worker fleet.

use poem_openapi::{ApiResponse, Object, OpenApi, param::Header, payload::Json};
use shared::{
    checkout::{self},
    jobs::{Checkout, Job as _},
    queue::JobTask,
};
use uuid::Uuid;

use super::Tag;
use crate::{
    AppState,
    error::{ApiError, ErrorCode},
    fields::{Text, rules::HeaderText},
    security::BearerAuth,
};

/// Longest `Idempotency-Key`, in characters.
const IDEMPOTENCY_KEY_MAX: usize = 255;

/// An `Idempotency-Key`: header text of 1–255 characters.
pub struct IdempotencyKey;

impl crate::fields::StringRule for IdempotencyKey {
    const NAME: &'static str = "IdempotencyKey";

    fn declare(schema: &mut poem_openapi::registry::MetaSchema) {
        HeaderText::declare(schema);
        schema.max_length = Some(IDEMPOTENCY_KEY_MAX);
    }
}

pub struct CheckoutApi {
    pub state: AppState,
}

/// What to check out: the cart, shipped to this address.
#[derive(Object)]
struct CheckoutRequest {
    /// A verified address of the buyer.
    address_id: Uuid,
}

/// The accepted checkout.
#[derive(Object)]
pub struct JobAccepted {
    /// Poll this job for the outcome.
    pub job_id: Uuid,
    /// `GET` this URL (optionally with `?wait=<seconds>`) for the job's state.
    pub status_url: String,
}

impl JobAccepted {
    /// The answer for job `job_id`.
    pub fn new(job_id: Uuid) -> Self {
        Self {
            job_id,
            status_url: format!("/api/v1/jobs/{job_id}"),
        }
    }
}

#[derive(ApiResponse)]
enum Accepted {
    /// Checkout accepted; the order is being created.
    #[oai(status = 202)]
    Job(Json<JobAccepted>),
}

#[OpenApi(prefix_path = "/api/v1/checkout", tag = "Tag::Checkout")]
impl CheckoutApi {
    /// Check out the cart. Answers 202 with a job to poll; the same `Idempotency-Key` returns
    /// the same job. Refused at once with 409 `out_of_stock` when the stock is gone, 409
    /// `checkout_in_progress` (naming that job) while another checkout of the cart is queued or
    /// running, whatever its key, 409 `too_many_unpaid_orders` past `MAX_UNPAID_ORDERS`, 422
    /// `currency_mismatch` for a cart in several currencies and 422 `limit_exceeded` past a
    /// money limit.
    #[oai(path = "/", method = "post", operation_id = "create_checkout")]
    async fn checkout(
        &self,
        auth: BearerAuth,
        /// A client-chosen key (1–255 characters) that makes retries safe.
        #[oai(name = "Idempotency-Key")]
        idempotency_key: Header<Text<IdempotencyKey>>,
        body: Json<CheckoutRequest>,
    ) -> Result<Accepted, ApiError> {
        let user = self.state.user(auth.token()).await?;
        let key = idempotency_key.0.as_str().to_owned();
        if key.chars().count() > IDEMPOTENCY_KEY_MAX {
            return Err(ApiError::bad_request(
                ErrorCode::IdempotencyKeyRequired,
                "an Idempotency-Key header of 1 to 255 characters is required",
            ));
        }
        let admitted = checkout::admit(
            &self.state.hot_pool,
            &self.state.gate,
            &checkout::AdmitRules::from_settings(&self.state.settings),
            user.id,
            &user.username,
            body.address_id,
            &key,
        )
        .await?;
        if admitted.created {
            // The row is committed: if this push is lost, the sweeper re-pushes the job.
            let task = JobTask::new(admitted.job_id);
            Checkout::enqueue_committed(&self.state.queue, task).await;
        }
        Ok(Accepted::Job(Json(JobAccepted::new(admitted.job_id))))
    }
}
