//! The signed-in user's account (read, update, change password, delete) and public profiles.

use poem::http::StatusCode;
use serde_json::json;
use test_support::TestApp;

use crate::helpers::{
    PASSWORD, assert_error, delete, id_of, invalid_fields, item_ids, patch, refresh, session,
};

const NEW_PASSWORD: &str = "battery staple";

async fn change_password(
    app: &TestApp,
    token: &str,
    current: &str,
    new: &str,
) -> test_support::TestResponse {
    app.post(
        "/api/v1/users/me/password",
        Some(token),
        json!({ "current_password": current, "new_password": new }),
    )
    .await
}

async fn stored_email(app: &TestApp, username: &str) -> String {
    sqlx::query_scalar("SELECT email FROM users WHERE username = $1")
        .bind(username)
        .fetch_one(app.pool())
        .await
        .unwrap()
}

#[tokio::test]
async fn me_returns_the_private_profile_of_the_token_holder() {
    // Arrange
    let app = TestApp::spawn().await;
    let (id, token, _) = session(&app, "alice").await;
    session(&app, "bob").await;

    // Act
    let resp = app.get("/api/v1/users/me", Some(&token)).await;

    // Assert
    assert_eq!(resp.status, StatusCode::OK, "{}", resp.body);
    assert_eq!(resp.body["id"], id.as_str());
    assert_eq!(resp.body["username"], "alice");
    assert_eq!(resp.body["email"], "alice@example.com");
    assert!(resp.body["created_at"].is_string());
    assert!(resp.body.get("password_hash").is_none() && resp.body.get("token_version").is_none());
}

#[tokio::test]
async fn me_without_a_token_is_401() {
    // Arrange
    let app = TestApp::spawn().await;

    // Act
    let resp = app.get("/api/v1/users/me", None).await;

    // Assert
    assert_error(&resp, StatusCode::UNAUTHORIZED, "unauthorized");
}

#[tokio::test]
async fn patching_me_changes_the_email_and_profile_fields() {
    // Arrange
    let app = TestApp::spawn().await;
    let (_, token, _) = session(&app, "alice").await;

    // Act
    let resp = patch(
        &app,
        "/api/v1/users/me",
        Some(&token),
        json!({ "email": "New.Alice@Example.com", "display_name": "Alice A.", "bio": "Sells lamps" }),
    )
    .await;

    // Assert
    assert_eq!(resp.status, StatusCode::OK, "{}", resp.body);
    assert_eq!(resp.body["email"], "new.alice@example.com");
    assert_eq!(resp.body["display_name"], "Alice A.");
    assert_eq!(resp.body["bio"], "Sells lamps");
    assert_eq!(stored_email(&app, "alice").await, "new.alice@example.com");
    assert_eq!(
        app.login("new.alice@example.com", PASSWORD).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn patching_me_with_an_email_someone_else_has_is_a_409_and_changes_nothing() {
    // Arrange
    let app = TestApp::spawn().await;
    let (_, token, _) = session(&app, "alice").await;
    app.register("bob").await;

    // Act
    let resp = patch(
        &app,
        "/api/v1/users/me",
        Some(&token),
        json!({ "email": "BOB@example.com", "display_name": "Not Bob" }),
    )
    .await;

    // Assert
    assert_error(&resp, StatusCode::CONFLICT, "email_taken");
    assert_eq!(resp.body["error"]["details"]["field"], "email");
    assert_eq!(stored_email(&app, "alice").await, "alice@example.com");
    let display_name: String =
        sqlx::query_scalar("SELECT display_name FROM users WHERE username = 'alice'")
            .fetch_one(app.pool())
            .await
            .unwrap();
    assert_eq!(display_name, "");
}

#[tokio::test]
async fn patching_me_with_an_invalid_email_is_a_422() {
    // Arrange
    let app = TestApp::spawn().await;
    let (_, token, _) = session(&app, "alice").await;

    // Act
    let resp = patch(
        &app,
        "/api/v1/users/me",
        Some(&token),
        json!({ "email": "nope" }),
    )
    .await;

    // Assert
    assert_error(&resp, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    assert_eq!(invalid_fields(&resp), ["email"]);
    assert_eq!(stored_email(&app, "alice").await, "alice@example.com");
}

#[tokio::test]
async fn changing_the_password_with_a_wrong_current_password_is_a_422_and_keeps_the_old_one() {
    // Arrange
    let app = TestApp::spawn().await;
    let (_, token, refresh_token) = session(&app, "alice").await;

    // Act
    let resp = change_password(&app, &token, "not my password", NEW_PASSWORD).await;

    // Assert
    assert_error(&resp, StatusCode::UNPROCESSABLE_ENTITY, "wrong_password");
    assert_eq!(invalid_fields(&resp), ["current_password"]);
    assert_eq!(
        app.get("/api/v1/users/me", Some(&token)).await.status,
        StatusCode::OK
    );
    assert_eq!(refresh(&app, &refresh_token).await.status, StatusCode::OK);
    assert_eq!(app.login("alice", PASSWORD).await.status, StatusCode::OK);
}

#[tokio::test]
async fn changing_to_a_too_short_password_is_a_422_naming_new_password() {
    // Arrange
    let app = TestApp::spawn().await;
    let (_, token, _) = session(&app, "alice").await;

    // Act
    let resp = change_password(&app, &token, PASSWORD, "short").await;

    // Assert
    assert_error(&resp, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    assert_eq!(invalid_fields(&resp), ["new_password"]);
    assert_eq!(app.login("alice", PASSWORD).await.status, StatusCode::OK);
}

#[tokio::test]
async fn changing_the_password_signs_out_every_session_and_the_new_password_logs_in() {
    // Arrange
    let app = TestApp::spawn().await;
    let (_, token, refresh_token) = session(&app, "alice").await;
    let other = app.login("alice", PASSWORD).await;
    let other_refresh = other.body["refresh_token"].as_str().unwrap().to_owned();

    // Act
    let resp = change_password(&app, &token, PASSWORD, NEW_PASSWORD).await;

    // Assert
    assert_eq!(resp.status, StatusCode::NO_CONTENT, "{}", resp.body);
    assert_error(
        &app.get("/api/v1/users/me", Some(&token)).await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    );
    assert_error(
        &refresh(&app, &refresh_token).await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    );
    assert_error(
        &refresh(&app, &other_refresh).await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    );
    assert_error(
        &app.login("alice", PASSWORD).await,
        StatusCode::UNAUTHORIZED,
        "invalid_credentials",
    );
    let fresh = app.login("alice", NEW_PASSWORD).await;
    assert_eq!(fresh.status, StatusCode::OK, "{}", fresh.body);
    let fresh_token = fresh.body["access_token"].as_str().unwrap();
    assert_eq!(
        app.get("/api/v1/users/me", Some(fresh_token)).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn deleting_me_revokes_every_credential_and_hides_my_listings() {
    // Arrange
    let app = TestApp::spawn().await;
    let (_, token, refresh_token) = session(&app, "alice").await;
    let (_, bob_token, _) = session(&app, "bob").await;
    let lamp = app.create_listing(&token, "Alice's lamp", 1500, 2).await;
    let chair = app.create_listing(&bob_token, "Bob's chair", 2500, 1).await;

    // Act
    let resp = delete(&app, "/api/v1/users/me", Some(&token)).await;

    // Assert
    assert_eq!(resp.status, StatusCode::NO_CONTENT, "{}", resp.body);
    assert_error(
        &app.get("/api/v1/users/me", Some(&token)).await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    );
    assert_error(
        &refresh(&app, &refresh_token).await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    );
    assert_error(
        &app.login("alice", PASSWORD).await,
        StatusCode::UNAUTHORIZED,
        "invalid_credentials",
    );
    let listed = app.get("/api/v1/listings", None).await;
    assert_eq!(item_ids(&listed), [id_of(&chair)]);
    let lamp_path = format!("/api/v1/listings/{}", id_of(&lamp));
    assert_error(
        &app.get(&lamp_path, Some(&bob_token)).await,
        StatusCode::NOT_FOUND,
        "listing_not_found",
    );
    let (deleted, active_listings): (bool, i64) = sqlx::query_as(
        "SELECT u.deleted_at IS NOT NULL,
                (SELECT count(*) FROM listings l WHERE l.seller_id = u.id AND l.is_active)
         FROM users u WHERE u.username = 'alice'",
    )
    .fetch_one(app.pool())
    .await
    .unwrap();
    assert!(deleted, "the row is kept (soft delete) for order history");
    assert_eq!(active_listings, 0);
}

#[tokio::test]
async fn a_deleted_account_has_no_public_profile_and_its_username_stays_reserved() {
    // Arrange
    let app = TestApp::spawn().await;
    let (_, token, _) = session(&app, "alice").await;
    delete(&app, "/api/v1/users/me", Some(&token)).await;

    // Act
    let profile = app.get("/api/v1/users/alice", None).await;
    let reregister = app.register("alice").await;

    // Assert
    assert_error(&profile, StatusCode::NOT_FOUND, "user_not_found");
    assert_error(&reregister, StatusCode::CONFLICT, "username_taken");
}

#[tokio::test]
async fn the_public_profile_shows_no_email() {
    // Arrange
    let app = TestApp::spawn().await;
    let (id, token, _) = session(&app, "alice").await;
    patch(
        &app,
        "/api/v1/users/me",
        Some(&token),
        json!({ "display_name": "Alice", "bio": "Lamps" }),
    )
    .await;

    // Act
    let resp = app.get("/api/v1/users/ALICE", None).await;

    // Assert
    assert_eq!(resp.status, StatusCode::OK, "{}", resp.body);
    assert_eq!(resp.body["id"], id.as_str());
    assert_eq!(resp.body["username"], "alice");
    assert_eq!(resp.body["display_name"], "Alice");
    assert_eq!(resp.body["bio"], "Lamps");
    assert!(
        resp.body.get("email").is_none(),
        "public profile leaks the email: {}",
        resp.body
    );
    assert!(!resp.body.to_string().contains("alice@example.com"));
}

#[tokio::test]
async fn an_unknown_username_is_a_404() {
    // Arrange
    let app = TestApp::spawn().await;

    // Act
    let resp = app.get("/api/v1/users/nobody", None).await;

    // Assert
    assert_error(&resp, StatusCode::NOT_FOUND, "user_not_found");
}
