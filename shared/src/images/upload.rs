//! Accepting uploads in the api: validate every file, store the originals, then commit the
//! `pending` rows with their jobs in one transaction and push the jobs. A refused file refuses
//! the whole upload (nothing is stored); a failure after the files were written deletes them
//! again (and the sweep catches what that misses).

use bytes::Bytes;
use sqlx::PgConnection;
use uuid::Uuid;

use super::{ImageDeps, ImageError, ImagePayload, MAX_ATTEMPTS, keys, remove, validate::Validated};
use crate::{
    db::{
        self, StoreError,
        images::{ImageRow, NewImage},
        jobs::NewJob,
    },
    domain::{ImageFormat, ImagePurpose},
    jobs::{Job as _, ProcessImage},
    queue::JobTask,
};

/// MIME type of a format.
pub fn content_type(format: ImageFormat) -> &'static str {
    match format {
        ImageFormat::Jpeg => "image/jpeg",
        ImageFormat::Png => "image/png",
        ImageFormat::Webp => "image/webp",
    }
}

/// A validated file, stored under its key.
struct Stored {
    id: Uuid,
    key: String,
    file: Validated,
}

/// Adds `files` to listing `listing_id` of seller `user_id`, after the existing images.
#[tracing::instrument(skip_all, fields(listing.id = %listing_id, files = files.len()))]
pub async fn add_to_listing(
    deps: &ImageDeps,
    user_id: Uuid,
    listing_id: Uuid,
    files: Vec<Bytes>,
) -> Result<Vec<ImageRow>, ImageError> {
    if files.is_empty() {
        return Err(ImageError::NoFiles);
    }
    let max = deps.settings.max_per_listing;
    let n = i64::try_from(files.len()).unwrap_or(i64::MAX);
    // Cheap refusals before any decoding; repeated under the lock below.
    {
        let mut conn = deps.pool.acquire().await?;
        owned_with_room(&mut conn, user_id, listing_id, n, max).await?;
    }
    let stored = store_all(deps, files).await?;
    let inserted = async {
        let mut tx = deps.pool.begin().await?;
        let next = owned_with_room(&mut tx, user_id, listing_id, n, max).await?;
        let mut rows = Vec::with_capacity(stored.len());
        for (offset, file) in (0..).zip(&stored) {
            let position = next.saturating_add(offset);
            rows.push(
                insert(
                    &mut tx,
                    user_id,
                    file,
                    ImagePurpose::Listing,
                    Some(listing_id),
                    position,
                )
                .await?,
            );
        }
        tx.commit().await?;
        Ok::<_, ImageError>(rows)
    }
    .await;
    let rows = match inserted {
        Ok(rows) => rows,
        Err(e) => {
            forget(deps, &stored).await;
            return Err(e);
        }
    };
    push_jobs(deps, &rows).await;
    Ok(rows)
}

/// Makes `file` the avatar of `user_id`; the previous avatar (row and files) is deleted.
#[tracing::instrument(skip_all, fields(user.id = %user_id))]
pub async fn set_avatar(
    deps: &ImageDeps,
    user_id: Uuid,
    file: Bytes,
) -> Result<ImageRow, ImageError> {
    let stored = store_all(deps, vec![file]).await?;
    let inserted = async {
        let mut tx = deps.pool.begin().await?;
        let row = insert(&mut tx, user_id, &stored[0], ImagePurpose::Avatar, None, 0).await?;
        let previous = match db::images::set_avatar(&mut tx, user_id, Some(row.id)).await? {
            Some(id) => db::images::delete(&mut tx, id).await?,
            None => None,
        };
        tx.commit().await?;
        Ok::<_, ImageError>((row, previous))
    }
    .await;
    let (row, previous) = match inserted {
        Ok(done) => done,
        Err(e) => {
            forget(deps, &stored).await;
            return Err(e);
        }
    };
    push_jobs(deps, std::slice::from_ref(&row)).await;
    if let Some(previous) = previous {
        remove::delete_files_logged(deps, previous.id).await;
    }
    Ok(row)
}

/// The listing's seller is `user_id`, and `n` more images fit; returns the next position.
async fn owned_with_room(
    conn: &mut PgConnection,
    user_id: Uuid,
    listing_id: Uuid,
    n: i64,
    max: i64,
) -> Result<i32, ImageError> {
    match db::images::lock_listing(conn, listing_id).await? {
        None => return Err(ImageError::ListingNotFound),
        Some(seller) if seller != user_id => return Err(ImageError::NotOwner),
        Some(_) => {}
    }
    let (count, next) = db::images::listing_slots(conn, listing_id).await?;
    if count.saturating_add(n) > max {
        return Err(ImageError::TooMany { max });
    }
    Ok(next)
}

/// Validates every file (refusing the upload at the first bad one), then writes the originals.
async fn store_all(deps: &ImageDeps, files: Vec<Bytes>) -> Result<Vec<Stored>, ImageError> {
    let limits = deps.limits();
    let mut stored = Vec::with_capacity(files.len());
    for (index, bytes) in files.into_iter().enumerate() {
        let file = deps
            .off_thread(move || super::validate::validate(bytes, limits))
            .await
            .map_err(|reason| ImageError::Rejected { index, reason })?;
        let id = Uuid::now_v7();
        let key = keys::original(id, file.format, &file.bytes);
        stored.push(Stored { id, key, file });
    }
    for (written, file) in stored.iter().enumerate() {
        let put = deps
            .store
            .put(
                &file.key,
                file.file.bytes.clone(),
                content_type(file.file.format),
            )
            .await;
        if let Err(e) = put {
            forget(deps, &stored[..written]).await;
            return Err(e.into());
        }
    }
    Ok(stored)
}

/// Inserts the `pending` row of `file` and its job.
async fn insert(
    tx: &mut PgConnection,
    owner_id: Uuid,
    file: &Stored,
    purpose: ImagePurpose,
    listing_id: Option<Uuid>,
    position: i32,
) -> Result<ImageRow, ImageError> {
    let payload =
        serde_json::to_value(ImagePayload { image_id: file.id }).expect("a payload serialises");
    let job = db::jobs::insert(
        tx,
        &NewJob {
            kind: ProcessImage::NAME,
            owner_id: Some(owner_id),
            payload: &payload,
            idempotency_key: None,
            request_fingerprint: None,
            max_attempts: MAX_ATTEMPTS,
        },
    )
    .await?
    // Without an idempotency key the insert cannot hit the uniqueness constraint.
    .ok_or(StoreError::NotFound)?;
    let byte_size = i32::try_from(file.file.bytes.len()).unwrap_or(i32::MAX);
    Ok(db::images::insert(
        tx,
        &NewImage {
            id: file.id,
            owner_id,
            purpose,
            listing_id,
            position,
            format: file.file.format,
            byte_size,
            orientation: i16::from(file.file.orientation),
            original_key: &file.key,
            job_id: job.id,
        },
    )
    .await?)
}

/// Deletes the originals of an upload that did not commit (best effort: the sweep removes
/// files without rows).
async fn forget(deps: &ImageDeps, stored: &[Stored]) {
    let keys: Vec<String> = stored.iter().map(|s| s.key.clone()).collect();
    if let Err(e) = deps.store.delete(&keys).await {
        tracing::warn!(error.message = %e, "could not delete the files of a refused upload; left for the sweep");
    }
}

/// Pushes the jobs of committed rows.
async fn push_jobs(deps: &ImageDeps, rows: &[ImageRow]) {
    for job_id in rows.iter().filter_map(|r| r.job_id) {
        ProcessImage::enqueue_committed(&deps.queue, JobTask::new(job_id)).await;
    }
}
