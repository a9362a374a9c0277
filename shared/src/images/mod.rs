//! Listing pictures and profile pictures.
//!
//! 1. **Upload** (api, [`upload`]): every file is validated in full at the boundary
//!    ([`validate`]): size, format by its bytes, pixel count from the header, a full decode;
//!    its metadata is stripped. The original is written to the object store, then the
//!    `pending` row and its `process_image` job are committed together, and the job is pushed.
//! 2. **Processing** (worker, [`process`]): the thumbnail and display renditions (WebP) and
//!    the upright dimensions; the row becomes `ready` in the transaction that finishes the job.
//!    Safe to run twice: file names are content-addressed, and only a `pending` row changes.
//! 3. **Deletion** ([`remove`]): the row goes first, then its files; files an order line keeps
//!    as its purchase-time picture stay.
//! 4. **Sweep** ([`sweep`]): orphaned rows (listing purged, avatar replaced) and files without
//!    a row (a crash between the two steps of an upload or a deletion) are removed.

pub mod keys;
pub mod process;
pub mod remove;
pub mod render;
pub mod storage;
pub mod sweep;
pub mod upload;
pub mod validate;

use std::sync::Arc;

use redis::aio::ConnectionManager;
use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use tokio::sync::Semaphore;
use uuid::Uuid;

pub use self::{
    storage::{ImageStore, StoreFailure},
    validate::Rejected,
};
use crate::{config::ImageSettings, db::StoreError, queue::JobQueue};

/// Attempts a `process_image` job gets (a storage outage retries; a bad file fails at once).
pub const MAX_ATTEMPTS: i32 = 5;

/// What the image flows need.
#[derive(Clone)]
pub struct ImageDeps {
    /// Postgres.
    pub pool: PgPool,
    /// Redis (job completion events).
    pub redis: ConnectionManager,
    /// Deployment key prefix.
    pub prefix: String,
    /// Producer of the `process_image` queue.
    pub queue: JobQueue,
    /// Where the files are.
    pub store: ImageStore,
    /// Limits and rendition sizes.
    pub settings: Arc<ImageSettings>,
    /// Bounds the images this process decodes at once (`IMAGE_DECODE_CONCURRENCY`).
    pub decode_slots: Arc<Semaphore>,
}

impl ImageDeps {
    /// The validation limits.
    pub fn limits(&self) -> validate::Limits {
        validate::Limits {
            max_bytes: self.settings.max_bytes,
            max_pixels: self.settings.max_pixels,
        }
    }

    /// Runs CPU-heavy `work` on the blocking pool, holding one decode slot.
    pub(crate) async fn off_thread<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> T {
        // The semaphore is never closed.
        let _slot = self
            .decode_slots
            .acquire()
            .await
            .expect("decode slots are never closed");
        match tokio::task::spawn_blocking(work).await {
            Ok(done) => done,
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        }
    }
}

/// `jobs.payload` of a `process_image` job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImagePayload {
    /// The image to process.
    pub image_id: Uuid,
}

/// Why an image request was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// The upload carried no file.
    #[error("no file was uploaded")]
    NoFiles,
    /// No such listing (or it was purged meanwhile).
    #[error("listing not found")]
    ListingNotFound,
    /// The listing is someone else's.
    #[error("only the seller can change this listing's images")]
    NotOwner,
    /// No such image on this listing.
    #[error("image not found")]
    ImageNotFound,
    /// The listing would have more than `IMAGE_MAX_PER_LISTING` images.
    #[error("a listing can have at most {max} images")]
    TooMany {
        /// `IMAGE_MAX_PER_LISTING`.
        max: i64,
    },
    /// File number `index` (0-based, in upload order) is not an acceptable image.
    #[error("file {index}: {reason}")]
    Rejected {
        /// Which file.
        index: usize,
        /// Why.
        reason: Rejected,
    },
    /// A new order must name each of the listing's images exactly once.
    #[error("the new order must list each of the listing's images exactly once")]
    OrderMismatch,
    /// Database failure.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Object store failure.
    #[error("object store: {0}")]
    Objects(#[from] StoreFailure),
    /// Redis failure (the sweep's place in the store).
    #[error(transparent)]
    Redis(#[from] redis::RedisError),
}

impl From<sqlx::Error> for ImageError {
    fn from(e: sqlx::Error) -> Self {
        ImageError::Store(e.into())
    }
}
