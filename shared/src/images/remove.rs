//! Deleting and reordering images. A deletion commits the row's removal first and deletes the
//! files after it, so no row ever names a missing file; the files an order line keeps as its
//! purchase-time picture stay.

use std::collections::HashSet;

use uuid::Uuid;

use super::{ImageDeps, ImageError, keys};
use crate::db::{self, images::ImageRow};

/// Deletes image `image_id` of listing `listing_id` (its seller `user_id` only) with its files.
#[tracing::instrument(skip_all, fields(listing.id = %listing_id, image.id = %image_id))]
pub async fn delete_listing_image(
    deps: &ImageDeps,
    user_id: Uuid,
    listing_id: Uuid,
    image_id: Uuid,
) -> Result<(), ImageError> {
    let mut tx = deps.pool.begin().await?;
    owner_check(&mut tx, user_id, listing_id).await?;
    let deleted = db::images::delete_from_listing(&mut tx, listing_id, image_id)
        .await?
        .ok_or(ImageError::ImageNotFound)?;
    tx.commit().await?;
    delete_files_logged(deps, deleted.id).await;
    Ok(())
}

/// Removes the avatar of `user_id` (row and files). Returns whether there was one.
#[tracing::instrument(skip_all, fields(user.id = %user_id))]
pub async fn remove_avatar(deps: &ImageDeps, user_id: Uuid) -> Result<bool, ImageError> {
    let mut tx = deps.pool.begin().await?;
    let previous = match db::images::set_avatar(&mut tx, user_id, None).await? {
        Some(id) => db::images::delete(&mut tx, id).await?,
        None => None,
    };
    tx.commit().await?;
    if let Some(previous) = &previous {
        delete_files_logged(deps, previous.id).await;
    }
    Ok(previous.is_some())
}

/// Gives listing `listing_id`'s images the order of `ids` (main image first); `ids` must name
/// each of its images exactly once. Returns the images in their new order.
#[tracing::instrument(skip_all, fields(listing.id = %listing_id))]
pub async fn reorder(
    deps: &ImageDeps,
    user_id: Uuid,
    listing_id: Uuid,
    ids: &[Uuid],
) -> Result<Vec<ImageRow>, ImageError> {
    let unique: HashSet<_> = ids.iter().collect();
    if unique.len() != ids.len() {
        return Err(ImageError::OrderMismatch);
    }
    let mut tx = deps.pool.begin().await?;
    owner_check(&mut tx, user_id, listing_id).await?;
    let (count, _) = db::images::listing_slots(&mut tx, listing_id).await?;
    if usize::try_from(count).ok() != Some(ids.len()) {
        return Err(ImageError::OrderMismatch);
    }
    if db::images::reorder(&mut tx, listing_id, ids).await? != ids.len() as u64 {
        // An id that is not one of the listing's; the transaction is rolled back.
        return Err(ImageError::OrderMismatch);
    }
    let rows = db::images::for_listings(&mut tx, &[listing_id], Some(user_id)).await?;
    tx.commit().await?;
    Ok(rows)
}

/// Locks the listing and checks that `user_id` is its seller.
async fn owner_check(
    conn: &mut sqlx::PgConnection,
    user_id: Uuid,
    listing_id: Uuid,
) -> Result<(), ImageError> {
    match db::images::lock_listing(conn, listing_id).await? {
        None => Err(ImageError::ListingNotFound),
        Some(seller) if seller != user_id => Err(ImageError::NotOwner),
        Some(_) => Ok(()),
    }
}

/// Deletes every file of image `image_id` (whose row is gone) except those an order line keeps.
/// Returns how many were deleted.
pub async fn delete_files(deps: &ImageDeps, image_id: Uuid) -> Result<usize, ImageError> {
    let files: Vec<String> = deps
        .store
        .list(&keys::folder(image_id))
        .await?
        .into_iter()
        .map(|f| f.key)
        .collect();
    if files.is_empty() {
        return Ok(0);
    }
    let kept: HashSet<String> = {
        let mut conn = deps.pool.acquire().await?;
        db::images::kept_by_orders(&mut conn, &files)
            .await?
            .into_iter()
            .collect()
    };
    let doomed: Vec<String> = files.into_iter().filter(|k| !kept.contains(k)).collect();
    deps.store.delete(&doomed).await?;
    Ok(doomed.len())
}

/// [`delete_files`] after a committed deletion: a failure is logged and left to the sweep,
/// which removes files without a row.
pub(crate) async fn delete_files_logged(deps: &ImageDeps, image_id: Uuid) {
    if let Err(e) = delete_files(deps, image_id).await {
        tracing::warn!(image.id = %image_id, error.message = %e, "could not delete an image's files; left for the sweep");
    }
}
