//! The account flows: register, log in, refresh with reuse detection, log out, authenticate,
//! change password and delete the account.

use chrono::Utc;
use sqlx::PgPool;
use unicode_normalization::UnicodeNormalization;
use uuid::Uuid;

use super::{
    LimitedAction, LoginThrottle, hash_password,
    sessions::{Revoked, SessionCache},
    tokens::{JwtKeys, hash_refresh_token, new_refresh_token},
    verify_password,
};
use crate::{
    config::AuthSettings,
    db::{self, StoreError, users::UserRow},
    domain::{NewUser, Password, ValidationErrors, no_control},
};

/// Longer than any username (150) or email (254): such a login names no account.
const MAX_LOGIN_CHARS: usize = 254;

/// A hash no password matches; verifying against it for unknown users keeps login time constant,
/// so response times do not reveal which usernames exist.
const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$3tGnl3OpXDwSvIG0Cd2sJD/2Ul8yULfJXQAGYF0eyOo";

/// What a successful login or refresh returns.
#[derive(Debug, Clone)]
pub struct TokenPair {
    /// Short-lived JWT.
    pub access_token: String,
    /// Opaque, single-use, rotating.
    pub refresh_token: String,
    /// Access token lifetime in seconds.
    pub expires_in: u64,
}

/// Why an account operation was refused.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// Input failed validation.
    #[error("invalid input: {0}")]
    Invalid(#[from] ValidationErrors),
    /// Wrong username/email or password.
    #[error("invalid credentials")]
    InvalidCredentials,
    /// A password change whose current password is wrong (the session itself is valid).
    #[error("the current password is incorrect")]
    WrongPassword,
    /// Too many failures; try again after this many seconds.
    #[error("too many failed attempts")]
    Throttled {
        /// Seconds until the window ends.
        retry_after_secs: u64,
    },
    /// Missing, malformed, expired, revoked or reused token.
    #[error("invalid or expired token")]
    InvalidToken,
    /// Username or email already taken; names the field.
    #[error("{field} is already taken")]
    Taken {
        /// `username` or `email`.
        field: &'static str,
    },
    /// Database failure.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Anything else (Redis, hashing).
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

impl From<sqlx::Error> for AuthError {
    fn from(e: sqlx::Error) -> Self {
        AuthError::Store(e.into())
    }
}

impl From<redis::RedisError> for AuthError {
    fn from(e: redis::RedisError) -> Self {
        AuthError::Unexpected(anyhow::Error::new(e).context("login throttle unavailable"))
    }
}

/// A write to `users` that broke a unique constraint, as the field that is taken; any other
/// store error as it is.
pub fn account_conflict(e: StoreError) -> AuthError {
    match e.constraint() {
        Some("users_username_key") => AuthError::Taken { field: "username" },
        Some("users_email_key") => AuthError::Taken { field: "email" },
        _ => AuthError::Store(e),
    }
}

/// Account operations over Postgres (users, token families) and Redis (throttling, and the
/// announcements that keep every api's session cache honest).
#[derive(Clone)]
pub struct Authenticator {
    pool: PgPool,
    keys: JwtKeys,
    settings: AuthSettings,
    throttle: LoginThrottle,
    sessions: SessionCache,
}

impl Authenticator {
    /// Builds the authenticator.
    pub fn new(
        pool: PgPool,
        settings: AuthSettings,
        throttle: LoginThrottle,
        sessions: SessionCache,
    ) -> Self {
        let keys = JwtKeys::new(&settings.jwt_secret);
        Self {
            pool,
            keys,
            settings,
            throttle,
            sessions,
        }
    }

    /// The session cache (a route that changes what [`Authenticator::authenticate`] returns
    /// announces it there).
    pub fn sessions(&self) -> &SessionCache {
        &self.sessions
    }

    /// The JWT keys (for tests that craft tokens).
    pub fn keys(&self) -> &JwtKeys {
        &self.keys
    }

    /// Counts `action` from address `ip` against its limit; `Throttled` when it is over.
    pub async fn limit(&self, action: LimitedAction, ip: Option<&str>) -> Result<(), AuthError> {
        match self.throttle.hit(action, ip).await? {
            Some(retry_after_secs) => Err(AuthError::Throttled { retry_after_secs }),
            None => Ok(()),
        }
    }

    /// Creates an account.
    #[tracing::instrument(skip_all)]
    pub async fn register(&self, user: NewUser) -> Result<UserRow, AuthError> {
        let hash = hash_password(user.password.expose().to_owned()).await?;
        let mut conn = self.pool.acquire().await?;
        db::users::insert(&mut conn, &user, &hash)
            .await
            .map_err(account_conflict)
    }

    /// Exchanges credentials for a new token family. `ip` feeds the per-IP throttle.
    #[tracing::instrument(skip_all)]
    pub async fn login(
        &self,
        login: &str,
        password: &str,
        ip: Option<&str>,
    ) -> Result<TokenPair, AuthError> {
        // The connection goes back to the pool before the (slow) password check and before the
        // transaction below takes another one: holding it would let concurrent logins exhaust
        // the pool and wait on each other until the acquire timeout.
        no_control("username", login)?;
        // No account has a longer name or email: refuse before it becomes a lookup and a
        // throttling key.
        if login.chars().count() > MAX_LOGIN_CHARS {
            return Err(AuthError::InvalidCredentials);
        }
        // Usernames and emails are stored in NFC; a login typed in another form is the same.
        let login: String = login.nfc().collect();
        let login = login.as_str();
        let user = {
            let mut conn = self.pool.acquire().await?;
            db::users::find_active_by_login(&mut conn, login).await?
        };
        // Failures count against the account however it was named (username or email, any case),
        // so naming it differently does not buy more guesses. Unknown names count under the name.
        let account = user.as_ref().map_or_else(
            || format!("name:{}", login.to_lowercase()),
            |u| format!("id:{}", u.id),
        );
        // Counted before the (slow) check, atomically: parallel guesses cannot all get in
        // before the first failure is recorded.
        if let Some(retry_after_secs) = self.throttle.admit_login(&account, ip).await? {
            return Err(AuthError::Throttled { retry_after_secs });
        }
        let phc = user
            .as_ref()
            .map_or(DUMMY_HASH, |u| u.password_hash.as_str())
            .to_owned();
        let matches = verify_password(password.to_owned(), phc).await?;
        let user = match user {
            Some(user) if matches => user,
            // The account's counters took the attempt already; the address's takes the failure.
            _ => {
                self.throttle.record_failure(&account, ip).await?;
                return Err(AuthError::InvalidCredentials);
            }
        };
        self.throttle.record_success(&account, ip).await?;
        let mut tx = self.pool.begin().await?;
        let family = db::tokens::create_family(&mut tx, user.id).await?;
        let pair = self.issue(&mut tx, &user, family).await?;
        tx.commit().await?;
        Ok(pair)
    }

    /// Rotates a refresh token. Presenting a token that was already rotated revokes its whole
    /// family (it was probably stolen), and that revocation is committed even though the call fails.
    #[tracing::instrument(skip_all)]
    pub async fn refresh(&self, refresh_token: &str) -> Result<TokenPair, AuthError> {
        let mut tx = self.pool.begin().await?;
        let Some(stored) =
            db::tokens::find_for_update(&mut tx, &hash_refresh_token(refresh_token)).await?
        else {
            return Err(AuthError::InvalidToken);
        };
        if stored.family_revoked_at.is_some() || stored.expires_at <= Utc::now() {
            return Err(AuthError::InvalidToken);
        }
        if stored.used_at.is_some() {
            tracing::warn!(family.id = %stored.family_id, "refresh token reuse detected; revoking family");
            db::tokens::revoke_family(&mut tx, stored.family_id, "reuse_detected").await?;
            tx.commit().await?;
            self.sessions
                .revoke(Revoked::Session(stored.family_id))
                .await;
            return Err(AuthError::InvalidToken);
        }
        let user = db::users::find_active(&mut tx, stored.user_id)
            .await?
            .ok_or(AuthError::InvalidToken)?;
        db::tokens::mark_used(&mut tx, stored.id).await?;
        let pair = self.issue(&mut tx, &user, stored.family_id).await?;
        tx.commit().await?;
        Ok(pair)
    }

    /// Revokes the family of `refresh_token`. Unknown tokens are ignored (logout is idempotent).
    #[tracing::instrument(skip_all)]
    pub async fn logout(&self, refresh_token: &str) -> Result<(), AuthError> {
        let mut tx = self.pool.begin().await?;
        let stored =
            db::tokens::find_for_update(&mut tx, &hash_refresh_token(refresh_token)).await?;
        if let Some(stored) = &stored {
            db::tokens::revoke_family(&mut tx, stored.family_id, "logout").await?;
        }
        tx.commit().await?;
        if let Some(stored) = stored {
            self.sessions
                .revoke(Revoked::Session(stored.family_id))
                .await;
        }
        Ok(())
    }

    /// Resolves an access token to its active user, whose session is still open: from the
    /// session cache when it holds the session (see `auth::sessions` for how fresh that is),
    /// else from PostgreSQL.
    #[tracing::instrument(skip_all)]
    pub async fn authenticate(&self, access_token: &str) -> Result<UserRow, AuthError> {
        let claims = self
            .keys
            .verify_access(access_token)
            .ok_or(AuthError::InvalidToken)?;
        if let Some(user) = self.sessions.get(claims.sub, claims.fam)
            && user.token_version == claims.ver
        {
            return Ok(user);
        }
        let start = self.sessions.read_start();
        let mut conn = self.pool.acquire().await?;
        let user = db::users::find_active_in_session(&mut conn, claims.sub, claims.fam).await?;
        drop(conn);
        match user {
            Some(user) => {
                self.sessions.put(start, claims.fam, &user);
                if user.token_version == claims.ver {
                    Ok(user)
                } else {
                    Err(AuthError::InvalidToken)
                }
            }
            None => Err(AuthError::InvalidToken),
        }
    }

    /// Changes the password after checking the current one, and signs out every session.
    #[tracing::instrument(skip_all, fields(user.id = %user.id))]
    pub async fn change_password(
        &self,
        user: &UserRow,
        current: &str,
        new: &str,
    ) -> Result<(), AuthError> {
        let new = Password::parse("new_password", new)?;
        if !verify_password(current.to_owned(), user.password_hash.clone()).await? {
            return Err(AuthError::WrongPassword);
        }
        let hash = hash_password(new.expose().to_owned()).await?;
        let mut tx = self.pool.begin().await?;
        db::users::set_password(&mut tx, user.id, &hash).await?;
        db::tokens::revoke_all_for_user(&mut tx, user.id, "password_changed").await?;
        tx.commit().await?;
        self.sessions.revoke(Revoked::User(user.id)).await;
        Ok(())
    }

    /// Soft-deletes the account: tokens stop working and listings are deactivated.
    #[tracing::instrument(skip_all, fields(user.id = %user_id))]
    pub async fn delete_account(&self, user_id: Uuid) -> Result<(), AuthError> {
        let mut tx = self.pool.begin().await?;
        db::users::soft_delete(&mut tx, user_id).await?;
        db::tokens::revoke_all_for_user(&mut tx, user_id, "account_deleted").await?;
        tx.commit().await?;
        self.sessions.revoke(Revoked::User(user_id)).await;
        Ok(())
    }

    async fn issue(
        &self,
        conn: &mut sqlx::PgConnection,
        user: &UserRow,
        family: Uuid,
    ) -> Result<TokenPair, AuthError> {
        let access_token = self.keys.issue_access(
            user.id,
            user.token_version,
            family,
            self.settings.access_token_ttl,
        )?;
        let (refresh_token, hash) = new_refresh_token();
        let expires_at = Utc::now() + self.settings.refresh_token_ttl;
        db::tokens::insert_token(conn, family, &hash, expires_at).await?;
        Ok(TokenPair {
            access_token,
            refresh_token,
            expires_in: self.settings.access_token_ttl.as_secs(),
        })
    }
}
