//! `process_image`: makes the renditions of an uploaded image and sets it ready.

use super::{Failure, Job};
use crate::{
    images::process::{self, ProcessError, ProcessOutcome},
    queue::JobTask,
    services::Services,
};

/// Processes the `jobs` row of an accepted upload (`images::process`).
pub struct ProcessImage;

impl Job for ProcessImage {
    const NAME: &'static str = "process_image";
    type Payload = JobTask;
    type Output = ProcessOutcome;
    type Error = ProcessError;

    async fn run(services: &Services, task: JobTask) -> Result<ProcessOutcome, ProcessError> {
        process::process(&services.images(), task.job_id).await
    }

    fn failure(error: &ProcessError) -> Failure {
        match error {
            // Storage hiccups clear up on their own; the last attempt fails the image.
            ProcessError::Busy | ProcessError::Objects(_) => Failure::Transient,
            ProcessError::Store(_) => Failure::Unexpected,
        }
    }
}
