//! Processing a `process_image` job on the worker.
//!
//! 1. Claim the job row (a duplicate delivery finds it claimed or finished and does nothing).
//! 2. Read the image: a deleted one ends the job; a ready one is already done.
//! 3. Read the original, make the renditions off the async threads (one decode slot), write
//!    them. No transaction is open meanwhile.
//! 4. Set the image `ready` and succeed the job in one transaction, then announce the job. If
//!    the image was deleted meanwhile, the files just written are deleted again.
//!
//! Running twice is harmless: the renditions of one original have the same names and bytes,
//! and only a `pending` row is changed. A store outage hands the claim back and retries; on the
//! last attempt, or for a file that does not decode, the image and the job fail.

use serde::{Deserialize, Serialize};
use serde_json::json;
use uuid::Uuid;

use super::{
    ImageDeps, ImagePayload, StoreFailure,
    keys::{self, Rendition},
    remove,
    render::{Renditions, render},
};
use crate::{
    db::{self, StoreError, images::ImageRow, jobs::JobRow},
    domain::ImageStatus,
    job_events,
    jobs::{self, ClaimFailure, Job as _, ProcessImage},
};

/// How a run ended (also stored by apalis as the task result).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum ProcessOutcome {
    /// Another delivery already handled (or is handling) the job.
    Skipped,
    /// The image is ready.
    Ready {
        /// The image.
        image_id: Uuid,
        /// Upright width.
        width: u32,
        /// Upright height.
        height: u32,
    },
    /// The image was deleted before it was processed; nothing is left of it.
    Deleted {
        /// The image.
        image_id: Uuid,
    },
    /// The image and the job failed with this code.
    Failed {
        /// `image_corrupt`, `original_missing`, `storage_unavailable`, `invalid_payload`.
        code: String,
    },
}

/// A run that could not record anything (the job is delivered again).
#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    /// Another delivery holds the job's claim.
    #[error("the job is claimed by another delivery")]
    Busy,
    /// Database failure; the claim is handed back.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Object store failure; the claim is handed back.
    #[error("object store: {0}")]
    Objects(#[from] StoreFailure),
}

impl From<sqlx::Error> for ProcessError {
    fn from(e: sqlx::Error) -> Self {
        ProcessError::Store(e.into())
    }
}

impl ClaimFailure for ProcessError {
    fn busy() -> Self {
        ProcessError::Busy
    }

    fn is_store(&self) -> bool {
        !matches!(self, ProcessError::Busy)
    }
}

/// Runs one delivery of image job `job_id`.
#[tracing::instrument(skip_all, fields(job.id = %job_id))]
pub async fn process(deps: &ImageDeps, job_id: Uuid) -> Result<ProcessOutcome, ProcessError> {
    jobs::claimed(
        &deps.pool,
        job_id,
        ProcessImage::NAME,
        ProcessOutcome::Skipped,
        |job| async move {
            match run_claimed(deps, &job).await {
                Err(ProcessError::Objects(e)) if job.attempts >= job.max_attempts => {
                    tracing::error!(error.message = %e, "object store still failing on the last attempt");
                    give_up(deps, &job, None, "storage_unavailable", &e.to_string()).await
                }
                other => other,
            }
        },
    )
    .await
}

async fn run_claimed(deps: &ImageDeps, job: &JobRow) -> Result<ProcessOutcome, ProcessError> {
    let payload = match serde_json::from_value::<ImagePayload>(job.payload.clone()) {
        Ok(payload) => payload,
        Err(e) => return give_up(deps, job, None, "invalid_payload", &e.to_string()).await,
    };
    let image_id = payload.image_id;
    let image = {
        let mut conn = deps.pool.acquire().await?;
        db::images::find(&mut conn, image_id).await?
    };
    let image = match image {
        None => return finish(deps, job, ProcessOutcome::Deleted { image_id }).await,
        Some(image) if image.status != ImageStatus::Pending => {
            // Finished by an earlier run whose job update was lost: nothing to redo.
            let outcome = ready_outcome(&image);
            return finish(deps, job, outcome).await;
        }
        Some(image) => image,
    };
    let Some(original) = deps.store.get(&image.original_key).await? else {
        return give_up(
            deps,
            job,
            Some(&image),
            "original_missing",
            "the original file is gone",
        )
        .await;
    };
    let settings = deps.settings.clone();
    let (format, orientation) = (image.format, image.orientation);
    let rendered = deps
        .off_thread(move || {
            let orientation = u8::try_from(orientation).unwrap_or(1);
            render(&original, format, orientation, &settings)
        })
        .await;
    let renditions = match rendered {
        Ok(r) => r,
        Err(reason) => {
            return give_up(
                deps,
                job,
                Some(&image),
                "image_corrupt",
                &reason.to_string(),
            )
            .await;
        }
    };
    let (thumb_key, large_key) = write_renditions(deps, image_id, &renditions).await?;
    let size = (
        i32::try_from(renditions.width).unwrap_or(i32::MAX),
        i32::try_from(renditions.height).unwrap_or(i32::MAX),
    );
    let mut tx = deps.pool.begin().await?;
    let recorded = db::images::mark_ready(&mut tx, image_id, size, &thumb_key, &large_key).await?;
    let outcome = if recorded {
        ProcessOutcome::Ready {
            image_id,
            width: renditions.width,
            height: renditions.height,
        }
    } else {
        ProcessOutcome::Deleted { image_id }
    };
    db::jobs::succeed(&mut tx, job.id, &json!(outcome)).await?;
    tx.commit().await?;
    if !recorded {
        // Deleted while it was processed (a ready row cannot get here: it is only made ready
        // by the run holding the claim). Its deletion may have listed the folder before the
        // renditions were written.
        remove::delete_files_logged(deps, image_id).await;
    }
    job_events::publish(&deps.redis, &deps.prefix, job.id).await;
    Ok(outcome)
}

/// Writes both renditions; returns their keys (thumbnail, display).
async fn write_renditions(
    deps: &ImageDeps,
    image_id: Uuid,
    r: &Renditions,
) -> Result<(String, String), StoreFailure> {
    let thumb_key = keys::rendition(image_id, Rendition::Thumb, &r.thumb);
    let large_key = keys::rendition(image_id, Rendition::Large, &r.large);
    deps.store
        .put(&thumb_key, r.thumb.clone().into(), "image/webp")
        .await?;
    deps.store
        .put(&large_key, r.large.clone().into(), "image/webp")
        .await?;
    Ok((thumb_key, large_key))
}

fn ready_outcome(image: &ImageRow) -> ProcessOutcome {
    match (image.status, image.width, image.height) {
        (ImageStatus::Ready, Some(w), Some(h)) => ProcessOutcome::Ready {
            image_id: image.id,
            width: u32::try_from(w).unwrap_or(0),
            height: u32::try_from(h).unwrap_or(0),
        },
        _ => ProcessOutcome::Failed {
            code: "image_failed".to_owned(),
        },
    }
}

/// Succeeds the job with `outcome`.
async fn finish(
    deps: &ImageDeps,
    job: &JobRow,
    outcome: ProcessOutcome,
) -> Result<ProcessOutcome, ProcessError> {
    let mut conn = deps.pool.acquire().await?;
    db::jobs::succeed(&mut conn, job.id, &json!(outcome)).await?;
    drop(conn);
    job_events::publish(&deps.redis, &deps.prefix, job.id).await;
    Ok(outcome)
}

/// Fails the image (if any) and the job for good, in one transaction.
async fn give_up(
    deps: &ImageDeps,
    job: &JobRow,
    image: Option<&ImageRow>,
    code: &str,
    message: &str,
) -> Result<ProcessOutcome, ProcessError> {
    tracing::warn!(
        error.code = code,
        error.message = message,
        "image processing failed"
    );
    let mut tx = deps.pool.begin().await?;
    if let Some(image) = image {
        db::images::mark_failed(&mut tx, image.id).await?;
    }
    db::jobs::fail(&mut tx, job.id, code, message).await?;
    tx.commit().await?;
    job_events::publish(&deps.redis, &deps.prefix, job.id).await;
    Ok(ProcessOutcome::Failed {
        code: code.to_owned(),
    })
}
