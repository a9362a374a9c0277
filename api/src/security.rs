//! The bearer-token security scheme shown in the OpenAPI document.

use poem_openapi::{SecurityScheme, auth::Bearer};

/// `Authorization: Bearer <access_token>` from `POST /api/v1/auth/token`.
#[derive(SecurityScheme)]
#[oai(ty = "bearer", bearer_format = "JWT")]
pub struct BearerAuth(pub Bearer);

impl BearerAuth {
    /// The raw token.
    pub fn token(&self) -> &str {
        &self.0.token
    }
}
