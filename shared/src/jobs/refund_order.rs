//! `refund_order`: refunds unshipped lines of a paid order, asked for by its buyer or a seller.

use super::{Failure, Job};
use crate::{
    orders::refund::{self, RefundError, RefundOutcome},
    queue::JobTask,
    services::Services,
};

/// Processes the `jobs` row of an accepted refund request (`refund::process`).
pub struct RefundOrder;

impl Job for RefundOrder {
    const NAME: &'static str = "refund_order";
    type Payload = JobTask;
    type Output = RefundOutcome;
    type Error = RefundError;

    async fn run(services: &Services, task: JobTask) -> Result<RefundOutcome, RefundError> {
        refund::process(&services.payment(), task.job_id).await
    }

    fn failure(error: &RefundError) -> Failure {
        match error {
            RefundError::PaymentUnavailable(_) | RefundError::Busy => Failure::Transient,
            _ => Failure::Unexpected,
        }
    }
}
