//! Refresh-token families and their rotation chain.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

use super::StoreError;

/// A stored refresh token joined with its family, locked for the rotation decision.
#[derive(Debug, sqlx::FromRow)]
pub struct StoredRefreshToken {
    /// Token row id.
    pub id: Uuid,
    /// The login session this token belongs to.
    pub family_id: Uuid,
    /// Owner of the family.
    pub user_id: Uuid,
    /// Past this instant the token is refused.
    pub expires_at: DateTime<Utc>,
    /// Set once the token has been exchanged; a second exchange is reuse.
    pub used_at: Option<DateTime<Utc>>,
    /// Set when the family was revoked (logout, reuse, password change, deletion).
    pub family_revoked_at: Option<DateTime<Utc>>,
}

/// Starts a new token family for a fresh login.
#[tracing::instrument(skip_all, fields(user.id = %user_id))]
pub async fn create_family(conn: &mut PgConnection, user_id: Uuid) -> Result<Uuid, StoreError> {
    let id = Uuid::now_v7();
    sqlx::query!(
        "INSERT INTO refresh_token_families (id, user_id) VALUES ($1, $2)",
        id,
        user_id
    )
    .execute(conn)
    .await?;
    Ok(id)
}

/// Stores the hash of a newly issued token in `family_id`.
#[tracing::instrument(skip_all)]
pub async fn insert_token(
    conn: &mut PgConnection,
    family_id: Uuid,
    token_hash: &[u8],
    expires_at: DateTime<Utc>,
) -> Result<(), StoreError> {
    sqlx::query!(
        "INSERT INTO refresh_tokens (id, family_id, token_hash, expires_at) VALUES ($1, $2, $3, $4)",
        Uuid::now_v7(),
        family_id,
        token_hash,
        expires_at
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Finds a token by hash and locks it, so two concurrent exchanges of the same token serialise
/// and the second one is seen as reuse.
#[tracing::instrument(skip_all)]
pub async fn find_for_update(
    conn: &mut PgConnection,
    token_hash: &[u8],
) -> Result<Option<StoredRefreshToken>, StoreError> {
    Ok(sqlx::query_as!(
        StoredRefreshToken,
        "SELECT t.id, t.family_id, f.user_id, t.expires_at, t.used_at, f.revoked_at AS family_revoked_at
         FROM refresh_tokens t JOIN refresh_token_families f ON f.id = t.family_id
         WHERE t.token_hash = $1
         FOR UPDATE OF t",
        token_hash
    )
    .fetch_optional(conn)
    .await?)
}

/// Marks a token as exchanged.
#[tracing::instrument(skip_all)]
pub async fn mark_used(conn: &mut PgConnection, token_id: Uuid) -> Result<(), StoreError> {
    sqlx::query!(
        "UPDATE refresh_tokens SET used_at = now() WHERE id = $1",
        token_id
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Revokes one family (logout or detected reuse). Revoking twice keeps the first reason.
#[tracing::instrument(skip_all, fields(family.id = %family_id))]
pub async fn revoke_family(
    conn: &mut PgConnection,
    family_id: Uuid,
    reason: &str,
) -> Result<(), StoreError> {
    sqlx::query!(
        "UPDATE refresh_token_families SET revoked_at = now(), revoked_reason = $2
         WHERE id = $1 AND revoked_at IS NULL",
        family_id,
        reason
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Revokes every family of a user (password change, account deletion).
#[tracing::instrument(skip_all, fields(user.id = %user_id))]
pub async fn revoke_all_for_user(
    conn: &mut PgConnection,
    user_id: Uuid,
    reason: &str,
) -> Result<(), StoreError> {
    sqlx::query!(
        "UPDATE refresh_token_families SET revoked_at = now(), revoked_reason = $2
         WHERE user_id = $1 AND revoked_at IS NULL",
        user_id,
        reason
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Deletes up to `limit` token families that cannot be used and have not been usable for
/// `retention`: revoked that long ago, or whose newest token expired that long ago. A family
/// younger than `retention` is kept whatever its tokens say. Their tokens go with them
/// (`ON DELETE CASCADE`).
#[tracing::instrument(skip_all)]
pub async fn prune_dead_families(
    conn: &mut PgConnection,
    retention: std::time::Duration,
    limit: i64,
) -> Result<u64, StoreError> {
    let done = sqlx::query!(
        "DELETE FROM refresh_token_families WHERE id IN (
             SELECT f.id FROM refresh_token_families f
             WHERE f.created_at < now() - make_interval(secs => $1)
               AND (f.revoked_at < now() - make_interval(secs => $1)
                    OR NOT EXISTS (
                        SELECT 1 FROM refresh_tokens t
                        WHERE t.family_id = f.id
                          AND t.expires_at >= now() - make_interval(secs => $1)))
             LIMIT $2)",
        retention.as_secs_f64(),
        limit,
    )
    .execute(conn)
    .await?;
    Ok(done.rows_affected())
}
