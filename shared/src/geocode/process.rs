//! Processing a `geocode_address` job on the worker.
//!
//! 1. Claim the job row; this counts the attempt, and a duplicate delivery finds the row claimed
//!    or finished and does nothing.
//! 2. Read the address: a deleted one ends the job; with `GEOCODER=none` it is verified as typed.
//! 3. A cached answer is used as is. Otherwise take a slot from the fleet-wide rate limit (a
//!    bounded wait; when none is free the job is deferred without counting the attempt), call
//!    the provider with no database connection held, and cache a definitive answer.
//! 4. Record the address outcome and finish the job in one transaction, then announce it.
//!
//! Transient provider failures put the job back to `queued` and return
//! [`ProcessOutcome::Retry`] with a backoff delay; the caller schedules the next delivery. The
//! attempt cap lives in the `jobs` row: the last allowed attempt fails the address for good.

use std::time::Duration;

use rand::Rng;
use redis::aio::ConnectionManager;
use sqlx::PgPool;
use uuid::Uuid;

use super::{
    AddressQuery, GeocodeAnswer, GeocodeError, GeocodePayload, Geocoder,
    cache::GeocodeCache,
    google::GoogleGeocoder,
    rate_limit::RateLimiter,
    record::{fail_job, finish, give_up, update_for},
    retry_delay,
};
use crate::{
    config::GeocoderSettings,
    db::{
        self, StoreError,
        addresses::{AddressRow, GeocodeUpdate},
        jobs::JobRow,
    },
    domain::AddressStatus,
    jobs::{self, GeocodeAddress, Job as _},
};

/// Longest wait for a rate-limit slot before the job is deferred instead.
pub const DEFAULT_MAX_RATE_WAIT: Duration = Duration::from_secs(10);

/// What a geocoding job needs.
#[derive(Clone)]
pub struct GeocodeDeps {
    /// Postgres.
    pub pool: PgPool,
    /// Redis (job completion events).
    pub redis: ConnectionManager,
    /// Deployment key prefix.
    pub prefix: String,
    /// The provider.
    pub geocoder: Geocoder,
    /// The fleet-wide request budget.
    pub limiter: RateLimiter,
    /// Definitive answers by input.
    pub cache: GeocodeCache,
    /// Longest wait for a rate-limit slot.
    pub max_rate_wait: Duration,
    /// The provider's per-request timeout (`GEOCODER_TIMEOUT_MS`).
    pub request_timeout: Duration,
}

impl GeocodeDeps {
    /// Dependencies over shared connections, limited to `settings.max_qps`.
    pub fn new(
        pool: PgPool,
        redis: ConnectionManager,
        prefix: &str,
        geocoder: Geocoder,
        settings: &GeocoderSettings,
    ) -> Self {
        Self {
            limiter: RateLimiter::new(redis.clone(), prefix, settings.max_qps),
            cache: GeocodeCache::new(redis.clone(), prefix),
            pool,
            redis,
            prefix: prefix.to_owned(),
            geocoder,
            max_rate_wait: DEFAULT_MAX_RATE_WAIT,
            request_timeout: settings.timeout,
        }
    }
}

/// How a run ended (also stored by apalis as the task result).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum ProcessOutcome {
    /// Another delivery already handled (or is handling) the job.
    Skipped,
    /// The address got its final status and the job succeeded.
    Recorded {
        /// The address.
        address_id: Uuid,
        /// `verified`, `needs_review` or `invalid`.
        status: AddressStatus,
    },
    /// The job is `queued` again; deliver it after `retry_in_ms`.
    Retry {
        /// Why: `geocoder_unavailable`, `rate_limited`, ...
        code: String,
        /// Backoff before the next delivery, in milliseconds.
        retry_in_ms: u64,
    },
    /// The job ended `failed` with this code (the address, if any, is `failed`).
    Failed {
        /// e.g. `geocoder_request_denied`, `geocoder_unavailable`, `address_deleted`.
        code: String,
    },
}

impl ProcessOutcome {
    /// The delay before the next delivery, for a [`ProcessOutcome::Retry`].
    pub fn retry_in(&self) -> Option<Duration> {
        match self {
            Self::Retry { retry_in_ms, .. } => Some(Duration::from_millis(*retry_in_ms)),
            _ => None,
        }
    }
}

/// A run that could not record anything (the job is delivered again).
#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    /// Another delivery holds the job's claim; retry once it may have lapsed.
    #[error("the job is claimed by another delivery")]
    Busy,
    /// Database failure; the claim is handed back.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for ProcessError {
    fn from(e: sqlx::Error) -> Self {
        ProcessError::Store(e.into())
    }
}

/// Runs one delivery of geocoding job `job_id`.
#[tracing::instrument(skip_all, fields(job.id = %job_id))]
pub async fn process(deps: &GeocodeDeps, job_id: Uuid) -> Result<ProcessOutcome, ProcessError> {
    let skipped = ProcessOutcome::Skipped;
    jobs::claimed(
        &deps.pool,
        job_id,
        GeocodeAddress::NAME,
        skipped,
        |job| async move { run_claimed(deps, &job).await },
    )
    .await
}

impl jobs::ClaimFailure for ProcessError {
    fn busy() -> Self {
        Self::Busy
    }
    fn is_store(&self) -> bool {
        matches!(self, Self::Store(_))
    }
}

/// The attempt of a claimed geocoding job.
async fn run_claimed(deps: &GeocodeDeps, job: &JobRow) -> Result<ProcessOutcome, ProcessError> {
    let mut conn = deps.pool.acquire().await?;
    let address = match serde_json::from_value::<GeocodePayload>(job.payload.clone()) {
        Ok(payload) => db::addresses::find(&mut conn, payload.address_id).await?,
        Err(e) => {
            drop(conn);
            return fail_job(deps, job, "invalid_payload", &e.to_string()).await;
        }
    };
    drop(conn);
    let Some(address) = address.filter(|a| a.deleted_at.is_none()) else {
        let message = "the address was deleted before it was geocoded";
        return fail_job(deps, job, "address_deleted", message).await;
    };
    if address.status != AddressStatus::Pending {
        // Already decided (e.g. by a delivery whose job update was lost): just finish the job.
        return finish(deps, job, &address, None).await;
    }
    if job.attempts > job.max_attempts {
        let message = "gave up after repeated geocoder failures";
        return give_up(deps, job, &address, "attempts_exhausted", message).await;
    }
    let Geocoder::Google(google) = &deps.geocoder else {
        let unchecked = GeocodeUpdate::status(AddressStatus::Verified);
        return finish(deps, job, &address, Some(&unchecked)).await;
    };
    let query = AddressQuery::from_row(&address);
    let answer = match cached(deps, &query).await {
        Some(answer) => answer,
        None => match ask(deps, google, job, &address, &query).await? {
            Ok(answer) => answer,
            Err(outcome) => return Ok(outcome),
        },
    };
    finish(deps, job, &address, Some(&update_for(&answer))).await
}

/// Asks the provider within the rate limit and caches a definitive answer. `Err(outcome)` when
/// the run ends without one (deferred, retrying or failed).
async fn ask(
    deps: &GeocodeDeps,
    google: &GoogleGeocoder,
    job: &JobRow,
    address: &AddressRow,
    query: &AddressQuery,
) -> Result<Result<GeocodeAnswer, ProcessOutcome>, ProcessError> {
    if let Some(deferred) = wait_for_slot(deps, job).await? {
        return Ok(Err(deferred));
    }
    match google.geocode(query).await {
        Ok(answer) => {
            if let Err(e) = deps.cache.put(query, &answer).await {
                tracing::warn!(error.message = %e, "could not cache the geocoder answer");
            }
            Ok(Ok(answer))
        }
        Err(GeocodeError::Retryable(reason)) => {
            retry_or_give_up(deps, job, address, &reason).await.map(Err)
        }
        Err(GeocodeError::Permanent { code, message }) => {
            tracing::error!(
                address.id = %address.id, error.code = %code, error.message = %message,
                "the geocoder refused the request; the address is failed"
            );
            give_up(deps, job, address, &code, &message).await.map(Err)
        }
    }
}

/// The cached answer; a Redis failure is a miss (the cache only saves money).
async fn cached(deps: &GeocodeDeps, query: &AddressQuery) -> Option<GeocodeAnswer> {
    deps.cache.get(query).await.unwrap_or_else(|e| {
        tracing::warn!(error.message = %e, "geocode cache unavailable; asking the geocoder");
        None
    })
}

/// Waits for a rate-limit slot. `Some(outcome)` when the job was deferred instead: no slot
/// within the allowed wait, or the limiter unreachable (calling without it could break the
/// quota). A deferral does not count as an attempt.
async fn wait_for_slot(
    deps: &GeocodeDeps,
    job: &JobRow,
) -> Result<Option<ProcessOutcome>, ProcessError> {
    let (code, retry_in) = match deps.limiter.acquire(deps.max_rate_wait).await {
        Ok(Ok(())) => return Ok(None),
        Ok(Err(retry_in)) => {
            let jitter = Duration::from_millis(rand::thread_rng().gen_range(0..1_000));
            ("rate_limited", retry_in + jitter)
        }
        Err(e) => {
            tracing::warn!(error.message = %e, "geocoder rate limiter unavailable; deferring");
            ("rate_limiter_unavailable", retry_delay(job.attempts))
        }
    };
    let mut conn = deps.pool.acquire().await?;
    db::jobs::defer(&mut conn, job.id, code, retry_in).await?;
    Ok(Some(retry(code, retry_in)))
}

/// A transient failure: back to `queued` with backoff, or `failed` on the last attempt.
async fn retry_or_give_up(
    deps: &GeocodeDeps,
    job: &JobRow,
    address: &AddressRow,
    reason: &str,
) -> Result<ProcessOutcome, ProcessError> {
    let code = "geocoder_unavailable";
    if job.attempts >= job.max_attempts {
        let message = format!("gave up after {} attempts: {reason}", job.attempts);
        tracing::warn!(address.id = %address.id, error.message = %message, "geocoding abandoned");
        return give_up(deps, job, address, code, &message).await;
    }
    let mut conn = deps.pool.acquire().await?;
    let retry_in = retry_delay(job.attempts);
    db::jobs::requeue(&mut conn, job.id, code, reason, retry_in).await?;
    Ok(retry(code, retry_in))
}

fn retry(code: &str, retry_in: Duration) -> ProcessOutcome {
    ProcessOutcome::Retry {
        code: code.to_owned(),
        retry_in_ms: u64::try_from(retry_in.as_millis()).unwrap_or(u64::MAX),
    }
}
