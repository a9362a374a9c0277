//! The `refund_order` job: adapts an apalis delivery to `shared::refunds::process`.

use apalis::prelude::{Attempt, BoxDynError, Data};
use shared::{
    queue::JobTask,
    refunds::{self, RefundError, RefundOutcome},
};

use crate::context::JobContext;

/// Processes one delivery. Retryable failures return an error so apalis re-schedules the task
/// with backoff; the attempt cap is enforced by the `jobs` row in Postgres, not by apalis.
#[tracing::instrument(skip_all, fields(job.id = %task.job_id, attempt = attempt.current()))]
pub async fn handle(
    task: JobTask,
    ctx: Data<JobContext>,
    attempt: Attempt,
) -> Result<RefundOutcome, BoxDynError> {
    match refunds::process(&ctx.payment(), task.job_id).await {
        Ok(outcome) => {
            tracing::info!(?outcome, "refund job done");
            Ok(outcome)
        }
        Err(e @ RefundError::PaymentUnavailable(_)) => {
            tracing::warn!(error.message = %e, "refund job will be retried");
            Err(e.into())
        }
        Err(e) => Err(super::retry_or_abandon(refunds::JOB_KIND, e, &attempt)),
    }
}
