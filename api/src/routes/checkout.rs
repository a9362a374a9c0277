//! Checkout: accepted at once (202) and processed by the worker fleet.

use poem_openapi::{ApiResponse, Object, OpenApi, param::Header, payload::Json};
use serde_json::json;
use shared::checkout::{self, AdmitError};
use uuid::Uuid;

use super::Tag;
use crate::{AppState, error::ApiError, security::BearerAuth};

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

impl From<AdmitError> for ApiError {
    fn from(e: AdmitError) -> Self {
        let message = e.to_string();
        match e {
            AdmitError::EmptyCart => Self::unprocessable("empty_cart", message, json!({})),
            AdmitError::AddressNotFound => {
                Self::unprocessable("address_not_found", message, json!({}))
            }
            AdmitError::AddressNotVerified => {
                Self::unprocessable("address_not_verified", message, json!({}))
            }
            AdmitError::ListingsUnavailable(ids) => Self::unprocessable(
                "listing_unavailable",
                message,
                json!({ "listing_ids": ids }),
            ),
            AdmitError::CurrencyMismatch(lines) => {
                let lines: Vec<_> = lines
                    .into_iter()
                    .map(|(listing_id, currency)| {
                        json!({ "listing_id": listing_id, "currency": currency })
                    })
                    .collect();
                Self::unprocessable("currency_mismatch", message, json!({ "lines": lines }))
            }
            AdmitError::LimitExceeded(limit) => limit.into(),
            AdmitError::CheckoutInProgress(job_id) => Self::conflict(
                "checkout_in_progress",
                message,
                json!({ "job_id": job_id, "status_url": format!("/api/v1/jobs/{job_id}") }),
            ),
            AdmitError::TooManyUnpaidOrders { limit } => {
                Self::conflict("too_many_unpaid_orders", message, json!({ "limit": limit }))
            }
            AdmitError::OutOfStock(ids) => {
                Self::conflict("out_of_stock", message, json!({ "listing_ids": ids }))
            }
            AdmitError::KeyReused => {
                Self::unprocessable("idempotency_key_reused", message, json!({}))
            }
            AdmitError::Store(e) => e.into(),
            AdmitError::Gate(e) => Self::internal(&e),
        }
    }
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
        idempotency_key: Header<Option<String>>,
        body: Json<CheckoutRequest>,
    ) -> Result<Accepted, ApiError> {
        let user = self.state.user(auth.token()).await?;
        let key = idempotency_key.0.unwrap_or_default();
        if key.is_empty() || key.len() > 255 {
            return Err(ApiError::bad_request(
                "idempotency_key_required",
                "an Idempotency-Key header of 1 to 255 characters is required",
            ));
        }
        let admitted = checkout::admit(
            &self.state.pool,
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
            if let Err(e) = self
                .state
                .queue
                .push(shared::jobs::CHECKOUT, admitted.job.id)
                .await
            {
                tracing::warn!(error.message = %e, "checkout push failed; left for the sweeper");
            }
        }
        Ok(Accepted::Job(Json(JobAccepted::new(admitted.job.id))))
    }
}
