//! Shared handles every route needs.

use std::ops::Deref;

use poem::Request;
use shared::{
    auth::{Authenticator, LoginThrottle, sessions::SessionCache},
    db::users::UserRow,
    services::Services,
};

use crate::{error::ApiError, job_waiter::JobWaiter};

/// Application state, cloned into each API struct: the process's [`Services`] (reachable
/// through `Deref`: `state.pool`, `state.queue`, ...) and what only the api needs.
#[derive(Clone)]
pub struct AppState {
    /// Connections, clients and settings, as every process has them.
    pub services: Services,
    /// Account operations.
    pub auth: Authenticator,
    /// Long-poll wake-ups for job status.
    pub job_waiter: JobWaiter,
}

impl AppState {
    /// Builds the state over the process's services. Must run inside the Tokio runtime (it
    /// starts the job-completion and session-revocation subscriptions).
    pub fn new(services: Services) -> Self {
        let settings = &services.settings;
        let prefix = &settings.redis_prefix;
        let throttle = LoginThrottle::new(services.redis.clone(), prefix, &settings.auth);
        let sessions = SessionCache::start(
            services.redis_client.clone(),
            services.redis.clone(),
            prefix,
            settings.auth.session_cache_ttl,
            settings.auth.session_cache_max_entries,
        );
        let auth = Authenticator::new(
            services.pool.clone(),
            settings.auth.clone(),
            throttle,
            sessions,
        );
        let job_waiter = JobWaiter::start(
            services.redis_client.clone(),
            shared::job_events::channel(prefix),
        );
        Self {
            services,
            auth,
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

impl Deref for AppState {
    type Target = Services;

    fn deref(&self) -> &Services {
        &self.services
    }
}
