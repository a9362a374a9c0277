//! Shared handles every route needs.

use poem::Request;
use redis::aio::ConnectionManager;
use shared::{
    auth::{Authenticator, LoginThrottle},
    config::Settings,
    db::users::UserRow,
};
use sqlx::PgPool;

use crate::error::ApiError;

/// Application state, cloned into each API struct.
#[derive(Clone)]
pub struct AppState {
    /// Postgres pool.
    pub pool: PgPool,
    /// Reconnecting Redis connection.
    pub redis: ConnectionManager,
    /// Process settings.
    pub settings: Settings,
    /// Account operations.
    pub auth: Authenticator,
}

impl AppState {
    /// Builds the state from open connections.
    pub fn new(pool: PgPool, redis: ConnectionManager, settings: Settings) -> Self {
        let throttle = LoginThrottle::new(redis.clone(), &settings.redis_prefix, &settings.auth);
        let auth = Authenticator::new(pool.clone(), settings.auth.clone(), throttle);
        Self { pool, redis, settings, auth }
    }

    /// The signed-in user, or 401.
    pub async fn user(&self, token: &str) -> Result<UserRow, ApiError> {
        Ok(self.auth.authenticate(token).await?)
    }

    /// The signed-in user if the request carries a valid bearer token; anonymous otherwise.
    /// An invalid token is still a 401: a client that sends credentials expects them to count.
    pub async fn optional_user(&self, req: &Request) -> Result<Option<UserRow>, ApiError> {
        let Some(header) = req.header("authorization") else {
            return Ok(None);
        };
        let token = header
            .strip_prefix("Bearer ")
            .or_else(|| header.strip_prefix("bearer "))
            .ok_or_else(ApiError::unauthorized)?;
        self.user(token).await.map(Some)
    }
}
