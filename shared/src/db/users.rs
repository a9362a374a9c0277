//! Users: registration, lookup, profile changes and soft deletion.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

use super::StoreError;
use crate::domain::{NewUser, ProfilePatch};

/// A user row (without soft-deleted ones, unless a function says otherwise).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct UserRow {
    /// UUIDv7.
    pub id: Uuid,
    /// Login name.
    pub username: String,
    /// Lowercase email.
    pub email: String,
    /// PHC string (argon2id).
    pub password_hash: String,
    /// Free text shown on the public profile.
    pub display_name: String,
    /// Free text shown on the public profile.
    pub bio: String,
    /// Compared with the `ver` claim of access tokens.
    pub token_version: i32,
    /// When the account was created.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

/// Inserts a new user. Unique violations come back as `Conflict` naming
/// `users_username_key` or `users_email_key`.
#[tracing::instrument(skip_all)]
pub async fn insert(
    conn: &mut PgConnection,
    user: &NewUser,
    password_hash: &str,
) -> Result<UserRow, StoreError> {
    let row = sqlx::query_as!(
        UserRow,
        "INSERT INTO users (id, username, email, password_hash) VALUES ($1, $2, $3, $4)
         RETURNING id, username, email, password_hash, display_name, bio, token_version, created_at, updated_at",
        Uuid::now_v7(),
        user.username.as_str(),
        user.email.as_str(),
        password_hash
    )
    .fetch_one(conn)
    .await?;
    Ok(row)
}

/// An active (not soft-deleted) user by id.
#[tracing::instrument(skip_all, fields(user.id = %id))]
pub async fn find_active(conn: &mut PgConnection, id: Uuid) -> Result<Option<UserRow>, StoreError> {
    Ok(sqlx::query_as!(
        UserRow,
        "SELECT id, username, email, password_hash, display_name, bio, token_version, created_at, updated_at
         FROM users WHERE id = $1 AND deleted_at IS NULL",
        id
    )
    .fetch_optional(conn)
    .await?)
}

/// An active user by id whose session (refresh-token family `family_id`) is not revoked, in
/// one round trip: a logged-out session's access tokens stop working at once.
#[tracing::instrument(skip_all, fields(user.id = %id))]
pub async fn find_active_in_session(
    conn: &mut PgConnection,
    id: Uuid,
    family_id: Uuid,
) -> Result<Option<UserRow>, StoreError> {
    Ok(sqlx::query_as!(
        UserRow,
        "SELECT id, username, email, password_hash, display_name, bio, token_version, created_at, updated_at
         FROM users u
         WHERE id = $1 AND deleted_at IS NULL
           AND EXISTS (SELECT 1 FROM refresh_token_families f
                       WHERE f.id = $2 AND f.user_id = u.id AND f.revoked_at IS NULL)",
        id,
        family_id
    )
    .fetch_optional(conn)
    .await?)
}

/// An active user by username or email, case-insensitively (login accepts either).
///
/// Usernames may contain `@`, so one account's username can equal another's email. The email
/// match wins: otherwise anyone could lock a user out of email login by registering their
/// address as a username.
#[tracing::instrument(skip_all)]
pub async fn find_active_by_login(
    conn: &mut PgConnection,
    login: &str,
) -> Result<Option<UserRow>, StoreError> {
    Ok(sqlx::query_as!(
        UserRow,
        "SELECT id, username, email, password_hash, display_name, bio, token_version, created_at, updated_at
         FROM users
         WHERE (lower(username) = lower($1) OR lower(email) = lower($1)) AND deleted_at IS NULL
         ORDER BY lower(email) = lower($1) DESC
         LIMIT 1",
        login
    )
    .fetch_optional(conn)
    .await?)
}

/// An active user by username, case-insensitively.
#[tracing::instrument(skip_all)]
pub async fn find_active_by_username(
    conn: &mut PgConnection,
    username: &str,
) -> Result<Option<UserRow>, StoreError> {
    Ok(sqlx::query_as!(
        UserRow,
        "SELECT id, username, email, password_hash, display_name, bio, token_version, created_at, updated_at
         FROM users WHERE lower(username) = lower($1) AND deleted_at IS NULL",
        username
    )
    .fetch_optional(conn)
    .await?)
}

/// Applies a profile patch to an active user.
#[tracing::instrument(skip_all, fields(user.id = %id))]
pub async fn update_profile(
    conn: &mut PgConnection,
    id: Uuid,
    patch: &ProfilePatch,
) -> Result<UserRow, StoreError> {
    Ok(sqlx::query_as!(
        UserRow,
        "UPDATE users SET
            email = COALESCE($2, email),
            display_name = COALESCE($3, display_name),
            bio = COALESCE($4, bio)
         WHERE id = $1 AND deleted_at IS NULL
         RETURNING id, username, email, password_hash, display_name, bio, token_version, created_at, updated_at",
        id,
        patch.email.as_ref().map(|e| e.as_str()),
        patch.display_name.as_deref(),
        patch.bio.as_deref()
    )
    .fetch_one(conn)
    .await?)
}

/// Stores a new password hash and bumps the token version so existing access tokens stop working.
#[tracing::instrument(skip_all, fields(user.id = %id))]
pub async fn set_password(
    conn: &mut PgConnection,
    id: Uuid,
    password_hash: &str,
) -> Result<(), StoreError> {
    let done = sqlx::query!(
        "UPDATE users SET password_hash = $2, token_version = token_version + 1
         WHERE id = $1 AND deleted_at IS NULL",
        id,
        password_hash
    )
    .execute(conn)
    .await?;
    if done.rows_affected() == 0 {
        return Err(StoreError::NotFound);
    }
    Ok(())
}

/// Soft-deletes a user: marks the row, invalidates access tokens and deactivates their listings.
/// Refresh-token families are revoked by the caller in the same transaction.
#[tracing::instrument(skip_all, fields(user.id = %id))]
pub async fn soft_delete(conn: &mut PgConnection, id: Uuid) -> Result<(), StoreError> {
    let done = sqlx::query!(
        "UPDATE users SET deleted_at = now(), token_version = token_version + 1
         WHERE id = $1 AND deleted_at IS NULL",
        id
    )
    .execute(&mut *conn)
    .await?;
    if done.rows_affected() == 0 {
        return Err(StoreError::NotFound);
    }
    sqlx::query!(
        "UPDATE listings SET is_active = false, deleted_at = COALESCE(deleted_at, now())
         WHERE seller_id = $1",
        id
    )
    .execute(conn)
    .await?;
    Ok(())
}
