//! `sweep_images`: removes orphaned image rows and files without rows (`images::sweep`).

use super::Periodic;
use crate::{
    images::{
        ImageError,
        sweep::{self, ImageSweepReport},
    },
    services::Services,
};

/// Hourly, at minute 30 (`SCHEDULE_SWEEP_IMAGES`).
pub struct SweepImages;

impl Periodic for SweepImages {
    const NAME: &'static str = "sweep_images";
    const SCHEDULE: &'static str = "0 30 * * * *";
    type Report = ImageSweepReport;
    type Error = ImageError;

    async fn run(services: &Services) -> Result<ImageSweepReport, ImageError> {
        sweep::sweep(&services.images()).await
    }
}
