//! The signed-in user's account and public profiles.

use chrono::{DateTime, Utc};
use poem_openapi::{ApiResponse, Object, OpenApi, param::Path, payload::Json};
use shared::{
    db::{self, users::UserRow},
    domain::ProfilePatch,
};
use uuid::Uuid;

use super::{Tag, images};
use crate::{
    AppState,
    error::{ApiError, ErrorCode},
    fields::{
        Text,
        rules::{EmailRule, NoControl, Opaque, PasswordRule},
        text_rule,
    },
    security::BearerAuth,
};

text_rule!(
    /// A display name.
    DisplayName = shared::domain::user::DISPLAY_NAME
);
text_rule!(
    /// A bio.
    Bio = shared::domain::user::BIO
);

pub struct UsersApi {
    pub state: AppState,
}

/// The account as its owner sees it.
#[derive(Object)]
pub struct PrivateUser {
    id: Uuid,
    username: String,
    email: String,
    display_name: String,
    bio: String,
    /// The profile picture's thumbnail; null without one (or while it is processed).
    #[oai(nullable)]
    avatar_url: Option<String>,
    created_at: DateTime<Utc>,
}

impl PrivateUser {
    /// The account of `u` with its profile picture.
    async fn shown(state: &AppState, u: UserRow) -> Result<Self, ApiError> {
        let avatar_url = images::avatar_url(state, u.id).await?;
        Ok(Self {
            avatar_url,
            ..u.into()
        })
    }
}

/// A new account (it has no profile picture yet).
impl From<UserRow> for PrivateUser {
    fn from(u: UserRow) -> Self {
        Self {
            avatar_url: None,
            id: u.id,
            username: u.username,
            email: u.email,
            display_name: u.display_name,
            bio: u.bio,
            created_at: u.created_at,
        }
    }
}

/// What anyone may see of an account.
#[derive(Object)]
struct PublicUser {
    id: Uuid,
    username: String,
    display_name: String,
    bio: String,
    /// The profile picture's thumbnail; null without one.
    #[oai(nullable)]
    avatar_url: Option<String>,
    created_at: DateTime<Utc>,
}

/// Fields to change; omitted fields stay as they are.
#[derive(Object)]
struct UpdateProfile {
    /// A valid email, unique.
    #[oai(nullable)]
    email: Option<Text<EmailRule>>,
    /// Up to 150 characters.
    #[oai(nullable)]
    display_name: Option<Text<DisplayName>>,
    /// Up to 2000 characters.
    #[oai(nullable)]
    bio: Option<Text<Bio>>,
}

/// A password change.
#[derive(Object)]
struct ChangePassword {
    /// The password in use now.
    current_password: Text<Opaque>,
    /// 8–128 characters.
    new_password: Text<PasswordRule>,
}

/// Money a seller holds in one currency.
#[derive(Object)]
struct Balance {
    /// Lowercase ISO currency.
    currency: String,
    /// Sales minus platform fees minus refunds, in minor units.
    amount_cents: i64,
}

/// A seller's balances, one per currency they have sold in.
#[derive(Object)]
struct Balances {
    balances: Vec<Balance>,
}

#[derive(ApiResponse)]
enum NoContent {
    /// Done.
    #[oai(status = 204)]
    Done,
}

#[OpenApi(prefix_path = "/api/v1/users", tag = "Tag::Users")]
impl UsersApi {
    /// The signed-in user's account.
    #[oai(path = "/me", method = "get", operation_id = "get_me")]
    async fn me(&self, auth: BearerAuth) -> Result<Json<PrivateUser>, ApiError> {
        let user = self.state.user(auth.token()).await?;
        Ok(Json(PrivateUser::shown(&self.state, user).await?))
    }

    /// Update the signed-in user's profile.
    #[oai(path = "/me", method = "patch", operation_id = "update_me")]
    async fn update_me(
        &self,
        auth: BearerAuth,
        body: Json<UpdateProfile>,
    ) -> Result<Json<PrivateUser>, ApiError> {
        let user = self.state.user(auth.token()).await?;
        let patch = ProfilePatch::parse(
            body.email.as_ref().map(Text::as_str),
            body.display_name.as_ref().map(Text::as_str),
            body.bio.as_ref().map(Text::as_str),
        )?;
        let mut conn = self.state.pool.acquire().await?;
        // An email another account took meanwhile is the same 409 as at sign-up.
        let row = db::users::update_profile(&mut conn, user.id, &patch)
            .await
            .map_err(shared::auth::account_conflict)?;
        drop(conn);
        // Cached sessions hold the old row (`GET /me` reads it from there).
        self.state
            .auth
            .sessions()
            .revoke(shared::auth::sessions::Revoked::User(user.id))
            .await;
        Ok(Json(PrivateUser::shown(&self.state, row).await?))
    }

    /// Delete the account (soft): its tokens stop working and its listings are deactivated.
    #[oai(path = "/me", method = "delete", operation_id = "delete_me")]
    async fn delete_me(&self, auth: BearerAuth) -> Result<NoContent, ApiError> {
        let user = self.state.user(auth.token()).await?;
        self.state.auth.delete_account(user.id).await?;
        Ok(NoContent::Done)
    }

    /// Change the password; every session (refresh-token family and access token) is revoked.
    /// Changes per address are limited (`PASSWORD_CHANGE_MAX_PER_IP`): 429 with `Retry-After`.
    #[oai(
        path = "/me/password",
        method = "post",
        operation_id = "change_password"
    )]
    async fn change_password(
        &self,
        auth: BearerAuth,
        body: Json<ChangePassword>,
        req: &poem::Request,
    ) -> Result<NoContent, ApiError> {
        let user = self.state.user(auth.token()).await?;
        let ip = self.state.client_ip(req);
        let accounts = &self.state.auth;
        accounts
            .limit(shared::auth::LimitedAction::PasswordChange, ip.as_deref())
            .await?;
        accounts
            .change_password(
                &user,
                body.current_password.as_str(),
                body.new_password.as_str(),
            )
            .await?;
        Ok(NoContent::Done)
    }

    /// The signed-in user's seller balance per currency, from the ledger: paid sales minus
    /// platform fees, minus refunds.
    #[oai(path = "/me/balance", method = "get", operation_id = "get_my_balance")]
    async fn balance(&self, auth: BearerAuth) -> Result<Json<Balances>, ApiError> {
        let user = self.state.user(auth.token()).await?;
        let mut conn = self.state.pool.acquire().await?;
        let balances = db::ledger::balance(&mut conn, user.id)
            .await?
            .into_iter()
            .map(|(currency, amount_cents)| Balance {
                currency,
                amount_cents,
            })
            .collect();
        Ok(Json(Balances { balances }))
    }

    /// A user's public profile.
    #[oai(path = "/:username", method = "get", operation_id = "get_user")]
    async fn get_user(
        &self,
        username: Path<Text<NoControl>>,
    ) -> Result<Json<PublicUser>, ApiError> {
        let username = username.0.as_str();
        shared::domain::no_control("username", username)?;
        let mut conn = self.state.pool.acquire().await?;
        let u = db::users::find_active_by_username(&mut conn, username)
            .await?
            .ok_or_else(|| ApiError::not_found(ErrorCode::UserNotFound))?;
        drop(conn);
        Ok(Json(PublicUser {
            avatar_url: images::avatar_url(&self.state, u.id).await?,
            id: u.id,
            username: u.username,
            display_name: u.display_name,
            bio: u.bio,
            created_at: u.created_at,
        }))
    }
}
