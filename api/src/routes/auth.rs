//! Registration and tokens.

use poem::Request;
use poem_openapi::{ApiResponse, Object, OpenApi, payload::Json};
use shared::{
    auth::{LimitedAction, TokenPair},
    domain::NewUser,
};

use super::{Tag, users::PrivateUser};
use crate::{
    AppState,
    error::ApiError,
    fields::{
        Text,
        rules::{EmailRule, Opaque, PasswordRule, UsernameRule},
        text_rule,
    },
};

text_rule!(
    /// A username or an email, looked up as sent (a longer one names no account: 401).
    LoginName, |schema| {
        schema.max_length = Some(shared::domain::Email::MAX_CHARS);
        schema.pattern = Some(shared::domain::text::NO_CONTROL_PATTERN.to_owned());
    }
);

pub struct AuthApi {
    pub state: AppState,
}

/// A new account.
#[derive(Object)]
struct RegisterRequest {
    /// 3–150 ASCII letters, digits or `_.@+-`.
    username: Text<UsernameRule>,
    /// A valid email address.
    email: Text<EmailRule>,
    /// 8–128 characters.
    password: Text<PasswordRule>,
}

/// Credentials.
#[derive(Object)]
struct TokenRequest {
    /// Username or email.
    username: Text<LoginName>,
    /// Password.
    password: Text<Opaque>,
}

/// A refresh token to rotate or revoke.
#[derive(Object)]
struct RefreshRequest {
    /// The opaque refresh token from the last token response.
    refresh_token: Text<Opaque>,
}

/// Issued tokens.
#[derive(Object)]
struct TokenResponse {
    /// Short-lived JWT for the `Authorization: Bearer` header.
    access_token: String,
    /// Single-use token for `POST /auth/refresh`; each use returns a new one.
    refresh_token: String,
    /// Always `Bearer`.
    token_type: String,
    /// Access token lifetime in seconds.
    expires_in: u64,
}

impl From<TokenPair> for TokenResponse {
    fn from(p: TokenPair) -> Self {
        Self {
            access_token: p.access_token,
            refresh_token: p.refresh_token,
            token_type: "Bearer".into(),
            expires_in: p.expires_in,
        }
    }
}

#[derive(ApiResponse)]
enum Registered {
    /// Account created.
    #[oai(status = 201)]
    Created(Json<PrivateUser>),
}

#[derive(ApiResponse)]
enum NoContent {
    /// Done.
    #[oai(status = 204)]
    Done,
}

#[OpenApi(prefix_path = "/api/v1/auth", tag = "Tag::Auth")]
impl AuthApi {
    /// Create an account. Sign-ups per address are limited (`REGISTER_MAX_PER_IP`): 429 with
    /// `Retry-After`.
    #[oai(path = "/register", method = "post", operation_id = "register_user")]
    async fn register(
        &self,
        body: Json<RegisterRequest>,
        req: &Request,
    ) -> Result<Registered, ApiError> {
        let user = NewUser::parse(
            body.username.as_str(),
            body.email.as_str(),
            body.password.as_str(),
        )?;
        let ip = self.state.client_ip(req);
        let auth = &self.state.auth;
        auth.limit(LimitedAction::Register, ip.as_deref()).await?;
        let row = auth.register(user).await?;
        Ok(Registered::Created(Json(row.into())))
    }

    /// Log in with username (or email) and password; starts a new refresh-token family.
    ///
    /// Repeated failures for an account from one address, from one address for any accounts,
    /// or for one account from many addresses are answered with 429 and `Retry-After`.
    #[oai(path = "/token", method = "post", operation_id = "create_token")]
    async fn token(
        &self,
        body: Json<TokenRequest>,
        req: &Request,
    ) -> Result<Json<TokenResponse>, ApiError> {
        let ip = self.state.client_ip(req);
        let pair = self
            .state
            .auth
            .login(
                body.username.as_str(),
                body.password.as_str(),
                ip.as_deref(),
            )
            .await?;
        Ok(Json(pair.into()))
    }

    /// Exchange a refresh token for a new pair. Reusing a rotated token revokes its whole family.
    /// Refreshes per address are limited (`REFRESH_MAX_PER_IP`): 429 with `Retry-After`.
    #[oai(path = "/refresh", method = "post", operation_id = "refresh_token")]
    async fn refresh(
        &self,
        body: Json<RefreshRequest>,
        req: &Request,
    ) -> Result<Json<TokenResponse>, ApiError> {
        let ip = self.state.client_ip(req);
        let auth = &self.state.auth;
        auth.limit(LimitedAction::Refresh, ip.as_deref()).await?;
        Ok(Json(
            auth.refresh(body.refresh_token.as_str()).await?.into(),
        ))
    }

    /// Revoke the session (refresh-token family) this token belongs to.
    #[oai(path = "/logout", method = "post", operation_id = "logout")]
    async fn logout(&self, body: Json<RefreshRequest>) -> Result<NoContent, ApiError> {
        self.state.auth.logout(body.refresh_token.as_str()).await?;
        Ok(NoContent::Done)
    }
}
