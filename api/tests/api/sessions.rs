//! The session cache (`AUTH_CACHE_TTL_MS`): a revoked access token stops working at once on
//! the api that revoked it, within milliseconds on every other api (Redis pub/sub), and never
//! later than the TTL when an announcement is lost.

use std::time::{Duration, Instant};

use poem::{endpoint::BoxEndpoint, http::StatusCode, test::TestClient};
use serde_json::{Value, json};
use test_support::{TestApp, eventually};

use crate::helpers::{PASSWORD, login_tokens, session};

/// A second api process over the same PostgreSQL and Redis: its own session cache and its own
/// revocation subscription.
struct OtherApi {
    client: TestClient<BoxEndpoint<'static>>,
    state: api::AppState,
}

impl OtherApi {
    fn start(app: &TestApp) -> Self {
        let state = api::AppState::new(app.state.services.clone());
        Self {
            client: TestClient::new(api::app(state.clone())),
            state,
        }
    }

    async fn me(&self, token: &str) -> (StatusCode, Value) {
        let resp = self
            .client
            .get("/api/v1/users/me")
            .header("authorization", format!("Bearer {token}"))
            .send()
            .await;
        let status = resp.0.status();
        let body = resp.0.into_body().into_json().await.unwrap_or(Value::Null);
        (status, body)
    }
}

/// Waits until both apis serve from their caches (their subscriptions are live).
async fn caches_live(app: &TestApp, other: &OtherApi) {
    eventually(
        "both session caches to subscribe",
        Duration::from_secs(10),
        || async {
            (app.state.auth.sessions().is_live() && other.state.auth.sessions().is_live())
                .then_some(())
        },
    )
    .await;
}

/// How soon another api must have dropped a revoked session: well under the TTL (5 s), so a
/// pass shows the announcement did it, not the expiry.
const ANNOUNCED_WITHIN: Duration = Duration::from_millis(1_000);

/// Changes the user's token version in PostgreSQL without announcing it (a lost announcement).
async fn bump_token_version(app: &TestApp, user_id: &str) {
    sqlx::query("UPDATE users SET token_version = token_version + 1 WHERE id = $1::uuid")
        .bind(user_id)
        .execute(app.pool())
        .await
        .unwrap();
}

async fn status_on(app: &TestApp, token: &str) -> StatusCode {
    app.get("/api/v1/users/me", Some(token)).await.status
}

#[tokio::test]
async fn a_changed_password_stops_old_tokens_at_once_here_and_within_milliseconds_elsewhere() {
    // Arrange: both apis have served (and cached) alice's session.
    let app = TestApp::spawn().await;
    let other = OtherApi::start(&app);
    caches_live(&app, &other).await;
    let (_, token, _) = session(&app, "alice").await;
    assert_eq!(status_on(&app, &token).await, StatusCode::OK);
    assert_eq!(other.me(&token).await.0, StatusCode::OK);

    // Act
    let changed = app
        .post(
            "/api/v1/users/me/password",
            Some(&token),
            json!({ "current_password": PASSWORD, "new_password": "battery staple" }),
        )
        .await;
    let changed_at = Instant::now();

    // Assert
    assert_eq!(changed.status, StatusCode::NO_CONTENT, "{}", changed.body);
    assert_eq!(status_on(&app, &token).await, StatusCode::UNAUTHORIZED);
    eventually(
        "the other api to refuse the old token",
        ANNOUNCED_WITHIN,
        || async {
            let (status, _) = other.me(&token).await;
            (status == StatusCode::UNAUTHORIZED).then_some(())
        },
    )
    .await;
    assert!(changed_at.elapsed() < ANNOUNCED_WITHIN);
}

#[tokio::test]
async fn logout_and_account_deletion_reach_the_other_apis_caches() {
    // Arrange
    let app = TestApp::spawn().await;
    let other = OtherApi::start(&app);
    caches_live(&app, &other).await;
    let (_, token, refresh) = session(&app, "alice").await;
    let (_, bob, _) = session(&app, "bob").await;
    for t in [&token, &bob] {
        assert_eq!(other.me(t).await.0, StatusCode::OK);
    }

    // Act
    let out = app
        .post(
            "/api/v1/auth/logout",
            None,
            json!({ "refresh_token": refresh }),
        )
        .await;
    let deleted = app
        .request("DELETE", "/api/v1/users/me", Some(&bob), None)
        .await;

    // Assert
    assert!(out.status.is_success(), "{}", out.body);
    assert_eq!(deleted.status, StatusCode::NO_CONTENT, "{}", deleted.body);
    for t in [&token, &bob] {
        eventually(
            "the other api to refuse the token",
            ANNOUNCED_WITHIN,
            || async { (other.me(t).await.0 == StatusCode::UNAUTHORIZED).then_some(()) },
        )
        .await;
    }
}

#[tokio::test]
async fn a_profile_edit_is_seen_at_once_by_every_api() {
    // Arrange
    let app = TestApp::spawn().await;
    let other = OtherApi::start(&app);
    caches_live(&app, &other).await;
    let (_, token, _) = session(&app, "alice").await;
    assert_eq!(other.me(&token).await.1["display_name"], "");

    // Act
    let edited = app
        .request(
            "PATCH",
            "/api/v1/users/me",
            Some(&token),
            Some(json!({ "display_name": "Alice A." })),
        )
        .await;

    // Assert
    assert_eq!(edited.status, StatusCode::OK, "{}", edited.body);
    assert_eq!(
        app.get("/api/v1/users/me", Some(&token)).await.body["display_name"],
        "Alice A."
    );
    eventually(
        "the other api to show the new name",
        ANNOUNCED_WITHIN,
        || async {
            let (_, body) = other.me(&token).await;
            (body["display_name"] == "Alice A.").then_some(())
        },
    )
    .await;
}

#[tokio::test]
async fn a_revocation_whose_announcement_is_lost_still_stops_the_token_within_the_ttl() {
    // Arrange: a short TTL, and a session the cache holds.
    let ttl = Duration::from_millis(400);
    let app = TestApp::spawn_with(|s| s.auth.session_cache_ttl = ttl).await;
    eventually(
        "the session cache to subscribe",
        Duration::from_secs(10),
        || async { app.state.auth.sessions().is_live().then_some(()) },
    )
    .await;
    let (id, token, _) = session(&app, "alice").await;
    let cached_at = Instant::now();
    assert_eq!(status_on(&app, &token).await, StatusCode::OK);

    // Act: the token version changes in PostgreSQL and nobody announces it.
    bump_token_version(&app, &id).await;

    // Assert: refused once the entry is older than the TTL, and not a moment later than that.
    eventually(
        "the unannounced revocation to take effect",
        ttl * 3,
        || async { (status_on(&app, &token).await == StatusCode::UNAUTHORIZED).then_some(()) },
    )
    .await;
    let refused_after = cached_at.elapsed();
    assert!(
        refused_after < ttl + Duration::from_millis(200),
        "refused {refused_after:?} after it was cached; the bound is {ttl:?}"
    );
    // A fresh login works (the cache holds the new version only).
    let (fresh, _) = login_tokens(&app, "alice").await;
    assert_eq!(status_on(&app, &fresh).await, StatusCode::OK);
}

#[tokio::test]
async fn with_the_cache_off_every_request_reads_the_session() {
    // Arrange
    let app = TestApp::spawn_with(|s| s.auth.session_cache_ttl = Duration::ZERO).await;
    let (id, token, _) = session(&app, "alice").await;
    assert_eq!(status_on(&app, &token).await, StatusCode::OK);

    // Act
    bump_token_version(&app, &id).await;

    // Assert
    assert!(!app.state.auth.sessions().is_live());
    assert_eq!(status_on(&app, &token).await, StatusCode::UNAUTHORIZED);
}
