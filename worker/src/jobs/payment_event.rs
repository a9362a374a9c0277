//! The `payment_event` job: adapts an apalis delivery to `shared::payment_events::process`.

use apalis::prelude::{Attempt, BoxDynError, Data};
use shared::{
    payment_events::{self, EventError, EventOutcome},
    queue::WebhookEventTask,
};

use crate::context::JobContext;

/// Processes one delivery of a stored webhook event. A retryable failure returns an error so
/// apalis re-delivers with backoff; the event row counts attempts and gives up past
/// `payment_events::MAX_ATTEMPTS`, so past apalis' own cap (25) the task is aborted and the
/// sweeper, which re-pushes unprocessed events, takes over.
#[tracing::instrument(skip_all, fields(event.id = %task.event_id, attempt = attempt.current()))]
pub async fn handle(
    task: WebhookEventTask,
    ctx: Data<JobContext>,
    attempt: Attempt,
) -> Result<EventOutcome, BoxDynError> {
    match payment_events::process(&ctx.payment(), &task.event_id).await {
        Ok(outcome) => {
            tracing::info!(?outcome, "payment event done");
            Ok(outcome)
        }
        Err(e @ EventError::Payment(_)) if attempt.current() < super::APALIS_DELIVERY_LIMIT => {
            tracing::warn!(error.message = %e, "payment event will be retried (Stripe unavailable)");
            Err(e.into())
        }
        Err(e) => Err(super::retry_or_abandon(
            shared::jobs::PAYMENT_EVENT,
            e,
            &attempt,
        )),
    }
}
