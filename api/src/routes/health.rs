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
        if let Err(e) = shared::db::ping(&self.state.pool).await {
            tracing::warn!(error.message = %e, "readiness: Postgres unreachable");
            return Err(ApiError::unavailable("database unreachable"));
        }
        let mut redis = self.state.redis.clone();
        if let Err(e) = redis::cmd("PING").query_async::<String>(&mut redis).await {
            tracing::warn!(error.message = %e, "readiness: Redis unreachable");
            return Err(ApiError::unavailable("redis unreachable"));
        }
        Ok(ok())
    }
}
