//! `geocode_address`: validates a newly saved address with the geocoder.

use super::{Failure, Job};
use crate::{
    geocode::{self, ProcessError, ProcessOutcome},
    queue::{JobTask, PushError},
    services::Services,
};

/// Processes the `jobs` row of a saved address (`geocode::process`).
///
/// A transient geocoder failure (or a full rate limit) comes back as
/// [`ProcessOutcome::Retry`] with the row already `queued` again: the next delivery is pushed
/// here with the job's own exponential, jittered delay, and this run ends well. Failing
/// instead would let apalis-redis re-deliver after a fixed `attempt` seconds, which is neither
/// exponential nor jittered. Only when that push fails does the run fail, so apalis' own
/// schedule is the fallback.
pub struct GeocodeAddress;

/// Why a geocoding run failed.
#[derive(Debug, thiserror::Error)]
pub enum GeocodeJobError {
    /// The run itself failed (database, Redis).
    #[error(transparent)]
    Process(#[from] ProcessError),
    /// The retry could not be scheduled.
    #[error(transparent)]
    Retry(#[from] PushError),
}

impl Job for GeocodeAddress {
    const NAME: &'static str = "geocode_address";
    type Payload = JobTask;
    type Output = ProcessOutcome;
    type Error = GeocodeJobError;

    async fn run(services: &Services, task: JobTask) -> Result<ProcessOutcome, GeocodeJobError> {
        let outcome = geocode::process(&services.geocode(), task.job_id).await?;
        if let Some(delay) = outcome.retry_in() {
            tracing::warn!(?outcome, "geocode job will be retried");
            Self::enqueue_after(&services.queue, task, delay).await?;
        }
        Ok(outcome)
    }

    fn failure(error: &GeocodeJobError) -> Failure {
        match error {
            GeocodeJobError::Process(ProcessError::Busy) => Failure::Transient,
            _ => Failure::Unexpected,
        }
    }
}
