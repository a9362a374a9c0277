//! Registration rules, login, refresh-token rotation with reuse detection, logout, access-token
//! verification and login throttling.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use poem::http::StatusCode;
use secrecy::ExposeSecret;
use serde_json::{Value, json};
use shared::auth::AccessClaims;
use test_support::TestApp;
use uuid::Uuid;

use crate::helpers::{
    PASSWORD, assert_error, count, invalid_fields, login_tokens, refresh, session, tokens_of,
};

async fn register(
    app: &TestApp,
    username: &str,
    email: &str,
    password: &str,
) -> test_support::TestResponse {
    app.post(
        "/api/v1/auth/register",
        None,
        json!({ "username": username, "email": email, "password": password }),
    )
    .await
}

async fn user_count(app: &TestApp) -> i64 {
    count(app, "SELECT count(*) FROM users").await
}

// Registration ----------------------------------------------------------------------------------

#[tokio::test]
async fn registration_creates_the_user_and_returns_its_private_profile() {
    // Arrange
    let app = TestApp::spawn().await;

    // Act
    let resp = register(&app, "alice", "Alice@Example.COM", PASSWORD).await;

    // Assert
    assert_eq!(resp.status, StatusCode::CREATED, "{}", resp.body);
    assert_eq!(resp.body["username"], "alice");
    assert_eq!(
        resp.body["email"], "alice@example.com",
        "emails are stored lowercase"
    );
    assert!(resp.body["created_at"].is_string());
    assert!(resp.body.get("password").is_none() && resp.body.get("password_hash").is_none());
    let id: Uuid = resp.body["id"]
        .as_str()
        .unwrap()
        .parse()
        .expect("id is a UUID");
    let (username, hash): (String, String) =
        sqlx::query_as("SELECT username, password_hash FROM users WHERE id = $1")
            .bind(id)
            .fetch_one(app.pool())
            .await
            .unwrap();
    assert_eq!(username, "alice");
    assert!(
        hash.starts_with("$argon2id$"),
        "password is stored as an argon2id hash"
    );
}

#[tokio::test]
async fn registration_accepts_usernames_and_passwords_at_the_length_limits() {
    // Arrange
    let app = TestApp::spawn().await;
    let long_name = "a".repeat(150);

    // Act
    let shortest = register(&app, "abc", "abc@example.com", &"p".repeat(8)).await;
    let longest = register(&app, &long_name, "long@example.com", &"p".repeat(128)).await;
    let symbols = register(&app, "al.ice_1+x-y@z", "sym@example.com", PASSWORD).await;

    // Assert
    for resp in [&shortest, &longest, &symbols] {
        assert_eq!(resp.status, StatusCode::CREATED, "{}", resp.body);
    }
    assert_eq!(user_count(&app).await, 3);
}

#[tokio::test]
async fn registration_rejects_each_invalid_field_with_422_and_writes_nothing() {
    // Arrange
    let app = TestApp::spawn().await;
    let cases = [
        ("ab", "ok@example.com", PASSWORD, "username"),
        (
            &"a".repeat(151) as &str,
            "ok@example.com",
            PASSWORD,
            "username",
        ),
        ("has space", "ok@example.com", PASSWORD, "username"),
        ("semi;colon", "ok@example.com", PASSWORD, "username"),
        ("slash/name", "ok@example.com", PASSWORD, "username"),
        ("alice", "not-an-email", PASSWORD, "email"),
        ("alice", "a@b", PASSWORD, "email"),
        ("alice", "a b@example.com", PASSWORD, "email"),
        ("alice", "ok@example.com", "seven77", "password"),
        ("alice", "ok@example.com", &"p".repeat(129), "password"),
    ];

    for (username, email, password, field) in cases {
        // Act
        let resp = register(&app, username, email, password).await;

        // Assert
        assert_error(&resp, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
        assert_eq!(
            invalid_fields(&resp),
            [field],
            "case {username:?} {email:?}"
        );
    }
    assert_eq!(user_count(&app).await, 0);
}

#[tokio::test]
async fn registration_reports_every_bad_field_at_once() {
    // Arrange
    let app = TestApp::spawn().await;

    // Act
    let resp = register(&app, "a", "nope", "short").await;

    // Assert
    assert_error(&resp, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    assert_eq!(invalid_fields(&resp), ["email", "password", "username"]);
    for field in ["email", "password", "username"] {
        assert!(resp.body["error"]["details"]["fields"][field].is_string());
    }
    assert_eq!(user_count(&app).await, 0);
}

#[tokio::test]
async fn a_username_taken_in_any_letter_case_is_a_409_naming_the_field() {
    // Arrange
    let app = TestApp::spawn().await;
    app.register("alice").await;

    // Act
    let resp = register(&app, "ALICE", "other@example.com", PASSWORD).await;

    // Assert
    assert_error(&resp, StatusCode::CONFLICT, "username_taken");
    assert_eq!(resp.body["error"]["details"]["field"], "username");
    assert_eq!(user_count(&app).await, 1);
}

#[tokio::test]
async fn an_email_taken_in_any_letter_case_is_a_409_naming_the_field() {
    // Arrange
    let app = TestApp::spawn().await;
    app.register("alice").await;

    // Act
    let resp = register(&app, "bob", "ALICE@example.com", PASSWORD).await;

    // Assert
    assert_error(&resp, StatusCode::CONFLICT, "email_taken");
    assert_eq!(resp.body["error"]["details"]["field"], "email");
    assert_eq!(user_count(&app).await, 1);
}

// Login -----------------------------------------------------------------------------------------

#[tokio::test]
async fn login_with_the_username_returns_a_bearer_token_pair() {
    // Arrange
    let app = TestApp::spawn().await;
    app.register("alice").await;

    // Act
    let resp = app.login("alice", PASSWORD).await;

    // Assert
    assert_eq!(resp.status, StatusCode::OK, "{}", resp.body);
    assert_eq!(resp.body["token_type"], "Bearer");
    assert_eq!(resp.body["expires_in"], 600);
    let (access, refresh) = tokens_of(&resp);
    assert_eq!(access.split('.').count(), 3, "the access token is a JWT");
    assert!(refresh.len() >= 32, "the refresh token is long and random");
    let me = app.get("/api/v1/users/me", Some(&access)).await;
    assert_eq!(me.status, StatusCode::OK, "{}", me.body);
    assert_eq!(me.body["username"], "alice");
    assert_eq!(
        count(&app, "SELECT count(*) FROM refresh_token_families").await,
        1
    );
}

#[tokio::test]
async fn login_with_the_email_in_any_case_works_too() {
    // Arrange
    let app = TestApp::spawn().await;
    app.register("alice").await;

    // Act
    let resp = app.login("Alice@Example.com", PASSWORD).await;

    // Assert
    assert_eq!(resp.status, StatusCode::OK, "{}", resp.body);
    let (access, _) = tokens_of(&resp);
    let me = app.get("/api/v1/users/me", Some(&access)).await;
    assert_eq!(me.body["username"], "alice");
}

#[tokio::test]
async fn a_wrong_password_is_401_invalid_credentials_and_issues_nothing() {
    // Arrange
    let app = TestApp::spawn().await;
    app.register("alice").await;

    // Act
    let resp = app.login("alice", "wrong password").await;

    // Assert
    assert_error(&resp, StatusCode::UNAUTHORIZED, "invalid_credentials");
    assert_eq!(
        count(&app, "SELECT count(*) FROM refresh_token_families").await,
        0
    );
}

#[tokio::test]
async fn an_unknown_user_gets_the_same_401_as_a_wrong_password() {
    // Arrange
    let app = TestApp::spawn().await;

    // Act
    let resp = app.login("nobody", PASSWORD).await;

    // Assert
    assert_error(&resp, StatusCode::UNAUTHORIZED, "invalid_credentials");
}

#[tokio::test]
async fn login_by_email_reaches_its_owner_even_when_another_username_equals_that_email() {
    // Arrange
    let app = TestApp::spawn().await;
    let lookalike = register(
        &app,
        "bob@example.com",
        "mallory@example.com",
        "mallory's password",
    )
    .await;
    assert_eq!(lookalike.status, StatusCode::CREATED, "{}", lookalike.body);
    app.register("bob").await;

    // Act
    let resp = app.login("bob@example.com", PASSWORD).await;

    // Assert
    assert_eq!(resp.status, StatusCode::OK, "{}", resp.body);
    let (access, _) = tokens_of(&resp);
    assert_eq!(
        app.get("/api/v1/users/me", Some(&access)).await.body["username"],
        "bob"
    );
}

// Refresh and logout ----------------------------------------------------------------------------

#[tokio::test]
async fn refresh_returns_a_new_working_pair() {
    // Arrange
    let app = TestApp::spawn().await;
    let (_, _, refresh_token) = session(&app, "alice").await;

    // Act
    let resp = refresh(&app, &refresh_token).await;

    // Assert
    assert_eq!(resp.status, StatusCode::OK, "{}", resp.body);
    assert_eq!(resp.body["token_type"], "Bearer");
    assert_eq!(resp.body["expires_in"], 600);
    let (access, next_refresh) = tokens_of(&resp);
    assert_ne!(next_refresh, refresh_token, "the refresh token rotates");
    assert_eq!(
        app.get("/api/v1/users/me", Some(&access)).await.status,
        StatusCode::OK
    );
    assert_eq!(refresh(&app, &next_refresh).await.status, StatusCode::OK);
}

#[tokio::test]
async fn reusing_a_rotated_refresh_token_revokes_its_whole_family() {
    // Arrange
    let app = TestApp::spawn().await;
    let (_, _, first) = session(&app, "alice").await;
    let (_, second) = tokens_of(&refresh(&app, &first).await);

    // Act
    let reuse = refresh(&app, &first).await;
    let newer = refresh(&app, &second).await;

    // Assert
    assert_error(&reuse, StatusCode::UNAUTHORIZED, "unauthorized");
    assert_error(&newer, StatusCode::UNAUTHORIZED, "unauthorized");
    let reason: Option<String> =
        sqlx::query_scalar("SELECT revoked_reason FROM refresh_token_families")
            .fetch_one(app.pool())
            .await
            .unwrap();
    assert_eq!(reason.as_deref(), Some("reuse_detected"));
}

#[tokio::test]
async fn reuse_in_one_login_leaves_another_login_of_the_same_user_working() {
    // Arrange
    let app = TestApp::spawn().await;
    let (_, _, stolen) = session(&app, "alice").await;
    let (_, other_device) = login_tokens(&app, "alice").await;
    refresh(&app, &stolen).await;

    // Act
    let reuse = refresh(&app, &stolen).await;
    let other = refresh(&app, &other_device).await;

    // Assert
    assert_error(&reuse, StatusCode::UNAUTHORIZED, "unauthorized");
    assert_eq!(other.status, StatusCode::OK, "{}", other.body);
}

#[tokio::test]
async fn an_unknown_refresh_token_is_401() {
    // Arrange
    let app = TestApp::spawn().await;

    // Act
    let resp = refresh(&app, "not-a-token-we-issued").await;

    // Assert
    assert_error(&resp, StatusCode::UNAUTHORIZED, "unauthorized");
}

#[tokio::test]
async fn an_expired_refresh_token_is_401() {
    // Arrange
    let app = TestApp::spawn().await;
    let (_, _, refresh_token) = session(&app, "alice").await;
    sqlx::query("UPDATE refresh_tokens SET expires_at = now() - interval '1 second'")
        .execute(app.pool())
        .await
        .unwrap();

    // Act
    let resp = refresh(&app, &refresh_token).await;

    // Assert
    assert_error(&resp, StatusCode::UNAUTHORIZED, "unauthorized");
}

#[tokio::test]
async fn logout_revokes_the_session_so_its_refresh_token_stops_working() {
    // Arrange
    let app = TestApp::spawn().await;
    let (_, _, refresh_token) = session(&app, "alice").await;

    // Act
    let resp = app
        .post(
            "/api/v1/auth/logout",
            None,
            json!({ "refresh_token": refresh_token }),
        )
        .await;

    // Assert
    assert_eq!(resp.status, StatusCode::NO_CONTENT, "{}", resp.body);
    assert_error(
        &refresh(&app, &refresh_token).await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    );
    let reason: Option<String> =
        sqlx::query_scalar("SELECT revoked_reason FROM refresh_token_families")
            .fetch_one(app.pool())
            .await
            .unwrap();
    assert_eq!(reason.as_deref(), Some("logout"));
}

#[tokio::test]
async fn logout_ends_the_session_its_access_tokens_included_but_not_other_sessions() {
    // Arrange: two sessions of one user (two devices), the first refreshed once.
    let app = TestApp::spawn().await;
    let (_, first_access, first_refresh) = session(&app, "alice").await;
    let (second_access, _) = login_tokens(&app, "alice").await;
    let rotated = refresh(&app, &first_refresh).await;
    assert_eq!(rotated.status, StatusCode::OK, "{}", rotated.body);
    let (rotated_access, rotated_refresh) = tokens_of(&rotated);
    assert_eq!(me_with(&app, &first_access).await.status, StatusCode::OK);

    // Act
    let resp = app
        .post(
            "/api/v1/auth/logout",
            None,
            json!({ "refresh_token": rotated_refresh }),
        )
        .await;

    // Assert: every access token of the session stops working at once, the other device's
    // session goes on.
    assert_eq!(resp.status, StatusCode::NO_CONTENT, "{}", resp.body);
    for token in [&first_access, &rotated_access] {
        assert_error(
            &me_with(&app, token).await,
            StatusCode::UNAUTHORIZED,
            "unauthorized",
        );
    }
    assert_eq!(me_with(&app, &second_access).await.status, StatusCode::OK);
    // A token claiming another session of the same user is refused too.
    let base = session_claims(&app, &second_access);
    let forged = app
        .state
        .auth
        .keys()
        .sign(&AccessClaims {
            fam: Uuid::now_v7(),
            ..base
        })
        .unwrap();
    assert_error(
        &me_with(&app, &forged).await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    );
}

#[tokio::test]
async fn logout_is_idempotent_and_ignores_unknown_tokens() {
    // Arrange
    let app = TestApp::spawn().await;
    let (_, _, refresh_token) = session(&app, "alice").await;
    let logout = |token: String| {
        app.post(
            "/api/v1/auth/logout",
            None,
            json!({ "refresh_token": token }),
        )
    };
    assert_eq!(
        logout(refresh_token.clone()).await.status,
        StatusCode::NO_CONTENT
    );

    // Act
    let again = logout(refresh_token.clone()).await;
    let unknown = logout("never-issued".to_owned()).await;

    // Assert
    assert_eq!(again.status, StatusCode::NO_CONTENT, "{}", again.body);
    assert_eq!(unknown.status, StatusCode::NO_CONTENT, "{}", unknown.body);
    assert_error(
        &refresh(&app, &refresh_token).await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    );
}

// Access tokens ---------------------------------------------------------------------------------

/// Claims like the ones the server issued in `access_token`'s session, valid for ten minutes.
fn session_claims(app: &TestApp, access_token: &str) -> AccessClaims {
    let now = chrono::Utc::now().timestamp();
    let issued = app
        .state
        .auth
        .keys()
        .verify_access(access_token)
        .expect("a valid access token");
    AccessClaims {
        exp: now + 600,
        iat: now,
        jti: Uuid::new_v4(),
        ..issued
    }
}

fn b64_json(value: &Value) -> String {
    URL_SAFE_NO_PAD.encode(value.to_string())
}

async fn me_with(app: &TestApp, token: &str) -> test_support::TestResponse {
    app.get("/api/v1/users/me", Some(token)).await
}

#[tokio::test]
async fn a_token_signed_by_the_server_key_with_correct_claims_is_accepted() {
    // Arrange: the control for the rejections below, so they fail for the reason they name.
    let app = TestApp::spawn().await;
    let (id, access, _) = session(&app, "alice").await;
    let base = session_claims(&app, &access);
    let token = app.state.auth.keys().sign(&base.clone()).unwrap();

    // Act
    let resp = me_with(&app, &token).await;

    // Assert
    assert_eq!(resp.status, StatusCode::OK, "{}", resp.body);
    assert_eq!(resp.body["id"], id.as_str());
}

#[tokio::test]
async fn an_expired_access_token_is_401() {
    // Arrange
    let app = TestApp::spawn().await;
    let (_, access, _) = session(&app, "alice").await;
    let base = session_claims(&app, &access);
    let now = chrono::Utc::now().timestamp();
    let expired = AccessClaims {
        iat: now - 1200,
        exp: now - 600,
        ..base.clone()
    };
    let token = app.state.auth.keys().sign(&expired).unwrap();

    // Act
    let resp = me_with(&app, &token).await;

    // Assert
    assert_error(&resp, StatusCode::UNAUTHORIZED, "unauthorized");
}

#[tokio::test]
async fn an_access_token_with_a_tampered_payload_or_signature_is_401() {
    // Arrange
    let app = TestApp::spawn().await;
    let (_, access, _) = session(&app, "alice").await;
    let (bob_id, _, _) = session(&app, "bob").await;
    let parts: Vec<&str> = access.split('.').collect();
    let mut payload: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
    payload["sub"] = json!(bob_id);
    let swapped_subject = format!("{}.{}.{}", parts[0], b64_json(&payload), parts[2]);
    let mut signature = URL_SAFE_NO_PAD.decode(parts[2]).unwrap();
    signature[0] ^= 0x01;
    let flipped_bit = format!(
        "{}.{}.{}",
        parts[0],
        parts[1],
        URL_SAFE_NO_PAD.encode(signature)
    );

    // Act
    let swapped = me_with(&app, &swapped_subject).await;
    let flipped = me_with(&app, &flipped_bit).await;

    // Assert
    assert_error(&swapped, StatusCode::UNAUTHORIZED, "unauthorized");
    assert_error(&flipped, StatusCode::UNAUTHORIZED, "unauthorized");
}

#[tokio::test]
async fn an_unsigned_alg_none_token_is_401() {
    // Arrange
    let app = TestApp::spawn().await;
    let (_, access, _) = session(&app, "alice").await;
    let base = session_claims(&app, &access);
    let header = b64_json(&json!({ "alg": "none", "typ": "JWT" }));
    let payload = b64_json(&serde_json::to_value(base.clone()).unwrap());

    // Act
    let without_signature = me_with(&app, &format!("{header}.{payload}.")).await;
    let without_dot = me_with(&app, &format!("{header}.{payload}")).await;

    // Assert
    assert_error(&without_signature, StatusCode::UNAUTHORIZED, "unauthorized");
    assert_error(&without_dot, StatusCode::UNAUTHORIZED, "unauthorized");
}

#[tokio::test]
async fn a_token_signed_with_another_secret_or_algorithm_is_401() {
    // Arrange
    let app = TestApp::spawn().await;
    let (_, access, _) = session(&app, "alice").await;
    let base = session_claims(&app, &access);
    let other_key = EncodingKey::from_secret(b"some-other-secret-that-is-long-enough");
    let other_secret =
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &base.clone(), &other_key).unwrap();
    let server_secret = app.settings.auth.jwt_secret.expose_secret().as_bytes();
    let other_alg = jsonwebtoken::encode(
        &Header::new(Algorithm::HS512),
        &base.clone(),
        &EncodingKey::from_secret(server_secret),
    )
    .unwrap();

    // Act
    let foreign = me_with(&app, &other_secret).await;
    let hs512 = me_with(&app, &other_alg).await;

    // Assert
    assert_error(&foreign, StatusCode::UNAUTHORIZED, "unauthorized");
    assert_error(&hs512, StatusCode::UNAUTHORIZED, "unauthorized");
}

#[tokio::test]
async fn a_validly_signed_token_that_is_not_an_access_token_is_401() {
    // Arrange
    let app = TestApp::spawn().await;
    let (_, access, _) = session(&app, "alice").await;
    let base = session_claims(&app, &access);
    let keys = app.state.auth.keys();
    let refresh_typed = keys
        .sign(&AccessClaims {
            typ: "refresh".to_owned(),
            ..base.clone()
        })
        .unwrap();
    let mut untyped = serde_json::to_value(base.clone()).unwrap();
    untyped.as_object_mut().unwrap().remove("typ");
    let untyped = keys.sign(&untyped).unwrap();

    // Act
    let with_refresh_typ = me_with(&app, &refresh_typed).await;
    let without_typ = me_with(&app, &untyped).await;

    // Assert
    assert_error(&with_refresh_typ, StatusCode::UNAUTHORIZED, "unauthorized");
    assert_error(&without_typ, StatusCode::UNAUTHORIZED, "unauthorized");
}

#[tokio::test]
async fn a_token_for_an_unknown_user_or_an_old_token_version_is_401() {
    // Arrange
    let app = TestApp::spawn().await;
    let (_, access, _) = session(&app, "alice").await;
    let base = session_claims(&app, &access);
    let keys = app.state.auth.keys();
    let stranger = keys
        .sign(&AccessClaims {
            sub: Uuid::now_v7(),
            ..base.clone()
        })
        .unwrap();
    let future_version = keys
        .sign(&AccessClaims {
            ver: 1,
            ..base.clone()
        })
        .unwrap();

    // Act
    let unknown = me_with(&app, &stranger).await;
    let wrong_version = me_with(&app, &future_version).await;

    // Assert
    assert_error(&unknown, StatusCode::UNAUTHORIZED, "unauthorized");
    assert_error(&wrong_version, StatusCode::UNAUTHORIZED, "unauthorized");
}

#[tokio::test]
async fn a_refresh_token_is_not_accepted_as_an_access_token() {
    // Arrange
    let app = TestApp::spawn().await;
    let (_, _, refresh_token) = session(&app, "alice").await;

    // Act
    let resp = me_with(&app, &refresh_token).await;

    // Assert
    assert_error(&resp, StatusCode::UNAUTHORIZED, "unauthorized");
}

// Throttling ------------------------------------------------------------------------------------

#[tokio::test]
async fn after_too_many_failures_even_the_right_password_is_throttled_with_retry_after() {
    // Arrange
    let app = TestApp::spawn_with(|s| s.auth.login_max_failures_per_account_and_ip = 3).await;
    app.register("alice").await;
    for _ in 0..3 {
        let resp = app.login("alice", "wrong password").await;
        assert_error(&resp, StatusCode::UNAUTHORIZED, "invalid_credentials");
    }

    // Act
    let resp = app.login("alice", PASSWORD).await;

    // Assert
    assert_error(&resp, StatusCode::TOO_MANY_REQUESTS, "too_many_attempts");
    let retry_after: u64 = resp.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        retry_after > 0 && retry_after <= 900,
        "Retry-After {retry_after}"
    );
    assert_eq!(
        resp.body["error"]["details"]["retry_after_secs"],
        retry_after
    );
    assert_eq!(
        count(&app, "SELECT count(*) FROM refresh_token_families").await,
        0
    );
}

#[tokio::test]
async fn throttling_one_account_leaves_other_accounts_alone() {
    // Arrange
    let app = TestApp::spawn_with(|s| s.auth.login_max_failures_per_account_and_ip = 3).await;
    app.register("alice").await;
    app.register("bob").await;
    for _ in 0..3 {
        app.login("alice", "wrong password").await;
    }

    // Act
    let bob = app.login("bob", PASSWORD).await;

    // Assert
    assert_eq!(bob.status, StatusCode::OK, "{}", bob.body);
    assert_error(
        &app.login("alice", PASSWORD).await,
        StatusCode::TOO_MANY_REQUESTS,
        "too_many_attempts",
    );
}

#[tokio::test]
async fn failures_count_per_account_whether_it_is_named_by_username_or_email() {
    // Arrange
    let app = TestApp::spawn_with(|s| s.auth.login_max_failures_per_account_and_ip = 3).await;
    app.register("alice").await;
    app.login("alice", "wrong password").await;
    app.login("ALICE", "wrong password").await;
    app.login("alice@example.com", "wrong password").await;

    // Act
    let by_email = app.login("alice@example.com", PASSWORD).await;
    let by_username = app.login("Alice", PASSWORD).await;

    // Assert
    assert_error(
        &by_email,
        StatusCode::TOO_MANY_REQUESTS,
        "too_many_attempts",
    );
    assert_error(
        &by_username,
        StatusCode::TOO_MANY_REQUESTS,
        "too_many_attempts",
    );
}

#[tokio::test]
async fn a_successful_login_clears_the_failure_count() {
    // Arrange
    let app = TestApp::spawn_with(|s| s.auth.login_max_failures_per_account_and_ip = 3).await;
    app.register("alice").await;
    for _ in 0..2 {
        app.login("alice", "wrong password").await;
    }
    assert_eq!(app.login("alice", PASSWORD).await.status, StatusCode::OK);
    for _ in 0..2 {
        app.login("alice", "wrong password").await;
    }

    // Act
    let resp = app.login("alice", PASSWORD).await;

    // Assert
    assert_eq!(resp.status, StatusCode::OK, "{}", resp.body);
}
