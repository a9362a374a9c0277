//! `payment_event`: applies a verified Stripe webhook event (or a development payment) to its
//! order.

use super::{Failure, Job};
use crate::{
    payment_events::{self, EventError, EventOutcome},
    queue::WebhookEventTask,
    services::Services,
};

/// Processes a stored `webhook_events` row (`payment_events::process`). The row counts its own
/// attempts and gives up past `payment_events::MAX_ATTEMPTS`; the sweeper re-pushes events
/// that are still unprocessed.
pub struct PaymentEvent;

impl Job for PaymentEvent {
    const NAME: &'static str = "payment_event";
    type Payload = WebhookEventTask;
    type Output = EventOutcome;
    type Error = EventError;

    async fn run(services: &Services, task: WebhookEventTask) -> Result<EventOutcome, EventError> {
        payment_events::process(&services.payment(), &task.event_id).await
    }

    fn failure(error: &EventError) -> Failure {
        match error {
            EventError::Payment(_) => Failure::Transient,
            _ => Failure::Unexpected,
        }
    }
}
