//! The `images` table: one row per uploaded picture, with the keys of its files in the object
//! store. The files themselves are written before the row (so a committed row always has its
//! original) and deleted after it (so a row never names a deleted file); a crash in between
//! leaves files without a row, which the image sweep removes.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

use super::StoreError;
use crate::domain::{ImageFormat, ImagePurpose, ImageStatus};

/// An image row.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ImageRow {
    /// UUIDv7.
    pub id: Uuid,
    /// The user who uploaded it.
    pub owner_id: Uuid,
    /// A listing picture or an avatar.
    pub purpose: ImagePurpose,
    /// The listing (`None` for an avatar, or once the listing was purged).
    pub listing_id: Option<Uuid>,
    /// Place in the listing's gallery; the lowest is the main image.
    pub position: i32,
    /// Where its processing is.
    pub status: ImageStatus,
    /// Sniffed format of the original.
    pub format: ImageFormat,
    /// Size of the stored original.
    pub byte_size: i32,
    /// EXIF orientation (1-8) of the original.
    pub orientation: i16,
    /// Key of the original in the object store.
    pub original_key: String,
    /// Upright width, once ready.
    pub width: Option<i32>,
    /// Upright height, once ready.
    pub height: Option<i32>,
    /// Key of the thumbnail, once ready.
    pub thumb_key: Option<String>,
    /// Key of the display rendition, once ready.
    pub large_key: Option<String>,
    /// The `process_image` job.
    pub job_id: Option<Uuid>,
    /// Upload time.
    pub created_at: DateTime<Utc>,
}

impl ImageRow {
    /// Every key this image's files may have (the renditions only once made).
    pub fn keys(&self) -> Vec<String> {
        std::iter::once(self.original_key.clone())
            .chain(self.thumb_key.clone())
            .chain(self.large_key.clone())
            .collect()
    }
}

/// What a new image row holds.
#[derive(Debug, Clone)]
pub struct NewImage<'a> {
    /// Pre-generated id (its files are named after it before the row exists).
    pub id: Uuid,
    /// Uploader.
    pub owner_id: Uuid,
    /// Listing picture or avatar.
    pub purpose: ImagePurpose,
    /// The listing, for a listing picture.
    pub listing_id: Option<Uuid>,
    /// Gallery position.
    pub position: i32,
    /// Sniffed format.
    pub format: ImageFormat,
    /// Stored size.
    pub byte_size: i32,
    /// EXIF orientation (1-8).
    pub orientation: i16,
    /// Key of the stored original.
    pub original_key: &'a str,
    /// Its `process_image` job.
    pub job_id: Uuid,
}

/// Inserts a `pending` image.
#[tracing::instrument(skip_all, fields(image.id = %image.id))]
pub async fn insert(conn: &mut PgConnection, image: &NewImage<'_>) -> Result<ImageRow, StoreError> {
    Ok(sqlx::query_as!(
        ImageRow,
        r#"INSERT INTO images (id, owner_id, purpose, listing_id, position, format, byte_size,
                               orientation, original_key, job_id)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
           RETURNING id, owner_id, purpose AS "purpose: ImagePurpose", listing_id, position,
                     status AS "status: ImageStatus", format AS "format: ImageFormat", byte_size,
                     orientation, original_key, width, height, thumb_key, large_key, job_id,
                     created_at"#,
        image.id,
        image.owner_id,
        image.purpose as ImagePurpose,
        image.listing_id,
        image.position,
        image.format as ImageFormat,
        image.byte_size,
        image.orientation,
        image.original_key,
        image.job_id,
    )
    .fetch_one(conn)
    .await?)
}

/// One image.
pub async fn find(conn: &mut PgConnection, id: Uuid) -> Result<Option<ImageRow>, StoreError> {
    Ok(sqlx::query_as!(
        ImageRow,
        r#"SELECT id, owner_id, purpose AS "purpose: ImagePurpose", listing_id, position,
                  status AS "status: ImageStatus", format AS "format: ImageFormat", byte_size,
                  orientation, original_key, width, height, thumb_key, large_key, job_id,
                  created_at
           FROM images WHERE id = $1"#,
        id
    )
    .fetch_optional(conn)
    .await?)
}

/// The images of `listing_ids`, gallery order (main first) within each listing. With
/// `all_of_owner`, that user's images are included whatever their status; everyone else's only
/// when ready.
pub async fn for_listings(
    conn: &mut PgConnection,
    listing_ids: &[Uuid],
    all_of_owner: Option<Uuid>,
) -> Result<Vec<ImageRow>, StoreError> {
    if listing_ids.is_empty() {
        return Ok(Vec::new());
    }
    Ok(sqlx::query_as!(
        ImageRow,
        r#"SELECT id, owner_id, purpose AS "purpose: ImagePurpose", listing_id, position,
                  status AS "status: ImageStatus", format AS "format: ImageFormat", byte_size,
                  orientation, original_key, width, height, thumb_key, large_key, job_id,
                  created_at
           FROM images
           WHERE listing_id = ANY($1) AND (status = 'ready' OR owner_id = $2)
           ORDER BY listing_id, position, id"#,
        listing_ids,
        all_of_owner,
    )
    .fetch_all(conn)
    .await?)
}

/// Locks listing `listing_id` for a change of its images and returns its seller, so two
/// uploads cannot both pass the per-listing limit. A single row lock: it cannot take part in
/// the id-ordered lock chains of checkout.
pub async fn lock_listing(
    conn: &mut PgConnection,
    listing_id: Uuid,
) -> Result<Option<Uuid>, StoreError> {
    Ok(sqlx::query_scalar!(
        "SELECT seller_id FROM listings WHERE id = $1 FOR NO KEY UPDATE",
        listing_id
    )
    .fetch_optional(conn)
    .await?)
}

/// How many images the listing has (any status), and the position after the last one.
pub async fn listing_slots(
    conn: &mut PgConnection,
    listing_id: Uuid,
) -> Result<(i64, i32), StoreError> {
    let row = sqlx::query!(
        r#"SELECT count(*) AS "count!", coalesce(max(position) + 1, 0) AS "next!"
           FROM images WHERE listing_id = $1"#,
        listing_id
    )
    .fetch_one(conn)
    .await?;
    Ok((row.count, row.next))
}

/// Gives the listing's images the order of `ids` (the first is the main image). Returns how
/// many were reordered: fewer than `ids.len()` means an id is not one of the listing's.
pub async fn reorder(
    conn: &mut PgConnection,
    listing_id: Uuid,
    ids: &[Uuid],
) -> Result<u64, StoreError> {
    let done = sqlx::query!(
        "UPDATE images SET position = o.ord - 1
         FROM unnest($2::uuid[]) WITH ORDINALITY AS o(id, ord)
         WHERE images.id = o.id AND images.listing_id = $1",
        listing_id,
        ids
    )
    .execute(conn)
    .await?;
    Ok(done.rows_affected())
}

/// Records the renditions of a pending image. Returns whether it was still pending (a deleted
/// image, or one a concurrent run finished, is left alone).
pub async fn mark_ready(
    conn: &mut PgConnection,
    id: Uuid,
    (width, height): (i32, i32),
    thumb_key: &str,
    large_key: &str,
) -> Result<bool, StoreError> {
    let done = sqlx::query!(
        "UPDATE images SET status = 'ready', width = $2, height = $3, thumb_key = $4, large_key = $5
         WHERE id = $1 AND status = 'pending'",
        id,
        width,
        height,
        thumb_key,
        large_key
    )
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Marks a pending image `failed`.
pub async fn mark_failed(conn: &mut PgConnection, id: Uuid) -> Result<(), StoreError> {
    sqlx::query!(
        "UPDATE images SET status = 'failed' WHERE id = $1 AND status = 'pending'",
        id
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Deletes image `id` if `listing_id` is its listing; returns it (its files are the caller's to
/// delete after the commit).
pub async fn delete_from_listing(
    conn: &mut PgConnection,
    listing_id: Uuid,
    id: Uuid,
) -> Result<Option<ImageRow>, StoreError> {
    Ok(sqlx::query_as!(
        ImageRow,
        r#"DELETE FROM images WHERE id = $1 AND listing_id = $2
           RETURNING id, owner_id, purpose AS "purpose: ImagePurpose", listing_id, position,
                     status AS "status: ImageStatus", format AS "format: ImageFormat", byte_size,
                     orientation, original_key, width, height, thumb_key, large_key, job_id,
                     created_at"#,
        id,
        listing_id
    )
    .fetch_optional(conn)
    .await?)
}

/// Deletes image `id`; returns it.
pub async fn delete(conn: &mut PgConnection, id: Uuid) -> Result<Option<ImageRow>, StoreError> {
    Ok(sqlx::query_as!(
        ImageRow,
        r#"DELETE FROM images WHERE id = $1
           RETURNING id, owner_id, purpose AS "purpose: ImagePurpose", listing_id, position,
                     status AS "status: ImageStatus", format AS "format: ImageFormat", byte_size,
                     orientation, original_key, width, height, thumb_key, large_key, job_id,
                     created_at"#,
        id
    )
    .fetch_optional(conn)
    .await?)
}

/// Makes `image_id` the avatar of `user_id` and returns the previous avatar's id. Locks the
/// user row, so two uploads at once leave exactly one avatar and the other image an orphan
/// for the caller to delete.
pub async fn set_avatar(
    conn: &mut PgConnection,
    user_id: Uuid,
    image_id: Option<Uuid>,
) -> Result<Option<Uuid>, StoreError> {
    let previous = sqlx::query_scalar!(
        "SELECT avatar_image_id FROM users WHERE id = $1 AND deleted_at IS NULL FOR NO KEY UPDATE",
        user_id
    )
    .fetch_optional(&mut *conn)
    .await?
    .ok_or(StoreError::NotFound)?;
    sqlx::query!(
        "UPDATE users SET avatar_image_id = $2 WHERE id = $1",
        user_id,
        image_id
    )
    .execute(conn)
    .await?;
    Ok(previous)
}

/// The ready avatar of each of `user_ids`: (user id, thumbnail key).
pub async fn avatars(
    conn: &mut PgConnection,
    user_ids: &[Uuid],
) -> Result<Vec<(Uuid, String)>, StoreError> {
    let rows = sqlx::query!(
        r#"SELECT u.id AS user_id, i.thumb_key AS "thumb_key!"
           FROM users u JOIN images i ON i.id = u.avatar_image_id
           WHERE u.id = ANY($1) AND i.status = 'ready' AND i.thumb_key IS NOT NULL"#,
        user_ids
    )
    .fetch_all(conn)
    .await?;
    Ok(rows.into_iter().map(|r| (r.user_id, r.thumb_key)).collect())
}

/// The avatar image of `user_id`, whatever its status.
pub async fn avatar_of(
    conn: &mut PgConnection,
    user_id: Uuid,
) -> Result<Option<ImageRow>, StoreError> {
    Ok(sqlx::query_as!(
        ImageRow,
        r#"SELECT i.id, i.owner_id, i.purpose AS "purpose: ImagePurpose", i.listing_id, i.position,
                  i.status AS "status: ImageStatus", i.format AS "format: ImageFormat", i.byte_size,
                  i.orientation, i.original_key, i.width, i.height, i.thumb_key, i.large_key,
                  i.job_id, i.created_at
           FROM users u JOIN images i ON i.id = u.avatar_image_id
           WHERE u.id = $1"#,
        user_id
    )
    .fetch_optional(conn)
    .await?)
}

/// Up to `limit` orphaned rows older than `grace_secs`: listing pictures whose listing was
/// purged, and avatars no user has any more (replaced by an upload that crashed before it
/// deleted the old one).
pub async fn orphans(
    conn: &mut PgConnection,
    grace_secs: f64,
    limit: i64,
) -> Result<Vec<ImageRow>, StoreError> {
    Ok(sqlx::query_as!(
        ImageRow,
        r#"SELECT id, owner_id, purpose AS "purpose: ImagePurpose", listing_id, position,
                  status AS "status: ImageStatus", format AS "format: ImageFormat", byte_size,
                  orientation, original_key, width, height, thumb_key, large_key, job_id,
                  created_at
           FROM images i
           WHERE i.created_at < now() - make_interval(secs => $1)
             AND ((i.purpose = 'listing' AND i.listing_id IS NULL)
               OR (i.purpose = 'avatar'
                   AND NOT EXISTS (SELECT 1 FROM users u WHERE u.avatar_image_id = i.id)))
           ORDER BY i.created_at
           LIMIT $2"#,
        grace_secs,
        limit
    )
    .fetch_all(conn)
    .await?)
}

/// Which of `ids` still have a row.
pub async fn existing(conn: &mut PgConnection, ids: &[Uuid]) -> Result<Vec<Uuid>, StoreError> {
    Ok(
        sqlx::query_scalar!("SELECT id FROM images WHERE id = ANY($1)", ids)
            .fetch_all(conn)
            .await?,
    )
}

/// Which of `keys` an order line keeps as its purchase-time picture (those files stay).
pub async fn kept_by_orders(
    conn: &mut PgConnection,
    keys: &[String],
) -> Result<Vec<String>, StoreError> {
    Ok(sqlx::query_scalar!(
        r#"SELECT DISTINCT image_key AS "image_key!" FROM order_lines WHERE image_key = ANY($1)"#,
        keys
    )
    .fetch_all(conn)
    .await?)
}
