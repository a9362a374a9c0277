//! Shared handles every route needs.

use poem::Request;
use redis::aio::ConnectionManager;
use shared::{
    auth::{Authenticator, LoginThrottle},
    config::Settings,
    db::users::UserRow,
    gate::StockGate,
    payments::Payments,
    queue::JobQueue,
};
use sqlx::PgPool;

use crate::{error::ApiError, job_waiter::JobWaiter};

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
    /// The Redis stock gate.
    pub gate: StockGate,
    /// Producer side of the job queues.
    pub queue: JobQueue,
    /// The payment provider (order cancellation).
    pub payments: Payments,
    /// Long-poll wake-ups for job status.
    pub job_waiter: JobWaiter,
}

impl AppState {
    /// Builds the state from open connections. Must run inside the Tokio runtime (it starts
    /// the job-completion subscription).
    pub fn new(
        pool: PgPool,
        redis: ConnectionManager,
        settings: Settings,
        payments: Payments,
    ) -> Self {
        let prefix = &settings.redis_prefix;
        let throttle = LoginThrottle::new(redis.clone(), prefix, &settings.auth);
        let auth = Authenticator::new(pool.clone(), settings.auth.clone(), throttle);
        let gate = StockGate::new(redis.clone(), prefix);
        let queue = JobQueue::new(redis.clone(), prefix, &settings.worker);
        let job_waiter = JobWaiter::start(
            settings.redis_url.clone(),
            shared::job_events::channel(prefix),
        );
        Self {
            pool,
            redis,
            settings,
            auth,
            gate,
            queue,
            payments,
            job_waiter,
        }
    }

    /// The signed-in user, or 401.
    pub async fn user(&self, token: &str) -> Result<UserRow, ApiError> {
        Ok(self.auth.authenticate(token).await?)
    }

    /// The client's address for the per-address limits: the socket peer, or what a trusted
    /// proxy (`TRUSTED_PROXIES`) says in `X-Forwarded-For`.
    pub fn client_ip(&self, req: &Request) -> Option<String> {
        let peer = req.remote_addr().as_socket_addr().map(|a| a.ip());
        let forwarded = req.header("x-forwarded-for");
        self.settings
            .auth
            .trusted_proxies
            .client_ip(peer, forwarded)
            .map(|ip| ip.to_string())
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
