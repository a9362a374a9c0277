//! The `geocode_address` job: adapts an apalis delivery to `shared::geocode::process`.

use apalis::prelude::{Attempt, BoxDynError, Data};
use shared::{
    geocode::{self, ProcessOutcome},
    jobs,
    queue::JobTask,
};

use crate::context::JobContext;

/// Processes one delivery.
///
/// A transient geocoder failure (or a full rate limit) comes back as
/// [`ProcessOutcome::Retry`] with the job row already `queued` again: the next delivery is
/// pushed with the job's own exponential, jittered delay, and this task ends `Ok`. Returning an
/// error instead would let apalis-redis re-deliver after a fixed `attempt` seconds, which is
/// neither exponential nor jittered (STACK.md, pitfall 3). Only when that push fails is an
/// error returned, so apalis' own schedule is the fallback. The attempt cap is in the `jobs`
/// row, not in apalis (which ignores `max_attempts`).
#[tracing::instrument(skip_all, fields(job.id = %task.job_id, attempt = attempt.current()))]
pub async fn handle(
    task: JobTask,
    ctx: Data<JobContext>,
    attempt: Attempt,
) -> Result<ProcessOutcome, BoxDynError> {
    match geocode::process(&ctx.geocode(), task.job_id).await {
        Ok(outcome) => match outcome.retry_in() {
            None => {
                tracing::info!(?outcome, "geocode job done");
                Ok(outcome)
            }
            Some(delay) => {
                tracing::warn!(?outcome, "geocode job will be retried");
                ctx.queue()
                    .push_after(jobs::GEOCODE_ADDRESS, task.job_id, delay)
                    .await
                    .map_err(|e| {
                        tracing::warn!(error.message = %e, "could not schedule the retry; apalis will");
                        e
                    })?;
                Ok(outcome)
            }
        },
        Err(e) => Err(super::retry_or_abandon(jobs::GEOCODE_ADDRESS, e, &attempt)),
    }
}
