//! Liveness and readiness probes for orchestrators.

use poem_openapi::{ApiResponse, Object, OpenApi, payload::Json};

use super::Tag;
use crate::{AppState, error::ApiError};

pub struct HealthApi {
    pub state: AppState,
}

/// Probe result.
#[derive(Object)]
struct HealthStatus {
    /// `ok`.
    status: String,
}

#[derive(ApiResponse)]
enum HealthResponse {
    /// Healthy.
    #[oai(status = 200)]
    Ok(Json<HealthStatus>),
}

fn ok() -> HealthResponse {
    HealthResponse::Ok(Json(HealthStatus {
        status: "ok".into(),
    }))
}

#[OpenApi(tag = "Tag::Health")]
impl HealthApi {
    /// The process is up.
    #[oai(path = "/health/live", method = "get", operation_id = "get_liveness")]
    async fn live(&self) -> HealthResponse {
        ok()
    }

    /// Postgres and Redis are reachable; 503 otherwise.
    #[oai(path = "/health/ready", method = "get", operation_id = "get_readiness")]
    async fn ready(&self) -> Result<HealthResponse, ApiError> {
        // Bounded: without a limit the ping would wait for the pool's acquire timeout and answer
        // 200 once a short restart is over, so the outage would never show.
        let limit = self.state.settings.readiness_timeout;
        match tokio::time::timeout(limit, shared::db::ping(&self.state.pool)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::warn!(error.message = %e, "readiness: Postgres unreachable");
                return Err(ApiError::unavailable("database unreachable"));
            }
            Err(_) => {
                tracing::warn!(?limit, "readiness: Postgres did not answer in time");
                return Err(ApiError::unavailable("database unreachable"));
            }
        }
        let mut redis = self.state.redis.clone();
        let ping = redis::cmd("PING");
        match tokio::time::timeout(limit, ping.query_async::<String>(&mut redis)).await {
            Ok(Ok(_)) => Ok(ok()),
            Ok(Err(e)) => {
                tracing::warn!(error.message = %e, "readiness: Redis unreachable");
                Err(ApiError::unavailable("redis unreachable"))
            }
            Err(_) => {
                tracing::warn!(?limit, "readiness: Redis did not answer in time");
                Err(ApiError::unavailable("redis unreachable"))
            }
        }
    }
}
