//! `checkout`: turns an admitted checkout into an order with reserved stock and a payment.

use super::{Failure, Job};
use crate::{
    checkout::{self, ProcessError, ProcessOutcome},
    queue::JobTask,
    services::Services,
};

/// Processes the `jobs` row of an admitted checkout (`checkout::process`).
pub struct Checkout;

impl Job for Checkout {
    const NAME: &'static str = "checkout";
    type Payload = JobTask;
    type Output = ProcessOutcome;
    type Error = ProcessError;

    async fn run(services: &Services, task: JobTask) -> Result<ProcessOutcome, ProcessError> {
        checkout::process(&services.checkout(), task.job_id).await
    }

    fn failure(error: &ProcessError) -> Failure {
        match error {
            ProcessError::PaymentUnavailable(_) | ProcessError::Busy => Failure::Transient,
            _ => Failure::Unexpected,
        }
    }
}
