//! The `checkout` job: adapts an apalis delivery to `shared::checkout::process`.

use apalis::prelude::{Attempt, BoxDynError, Data};
use shared::{
    checkout::{self, ProcessError, ProcessOutcome},
    queue::JobTask,
};

use crate::context::JobContext;

/// Processes one delivery. Retryable failures return an error so apalis re-schedules the task
/// with backoff; the attempt cap is enforced by the `jobs` row in Postgres, not by apalis
/// (which ignores `max_attempts`), so a delivery past the cap ends the job `failed` there.
#[tracing::instrument(skip_all, fields(job.id = %task.job_id, attempt = attempt.current()))]
pub async fn handle(
    task: JobTask,
    ctx: Data<JobContext>,
    attempt: Attempt,
) -> Result<ProcessOutcome, BoxDynError> {
    match checkout::process(&ctx.checkout(), task.job_id).await {
        Ok(outcome) => {
            tracing::info!(?outcome, "checkout job done");
            Ok(outcome)
        }
        Err(e @ ProcessError::PaymentUnavailable(_)) => {
            tracing::warn!(error.message = %e, "checkout job will be retried");
            Err(e.into())
        }
        Err(e) => Err(super::retry_or_abandon(checkout::JOB_KIND, e, &attempt)),
    }
}
