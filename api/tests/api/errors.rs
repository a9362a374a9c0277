//! Framework-level failures (bad JSON, wrong content type, unknown route, wrong method, missing
//! credentials, oversize body, bad path parameter) all leave as a 4xx with the error envelope.

use poem::http::StatusCode;
use serde_json::json;
use test_support::TestApp;

use crate::helpers::{assert_envelope, assert_error, collect, count};

#[tokio::test]
async fn malformed_json_is_a_400_with_the_error_envelope_and_writes_nothing() {
    // Arrange
    let app = TestApp::spawn().await;

    // Act
    let resp = app
        .raw(
            "POST",
            "/api/v1/auth/register",
            "application/json",
            r#"{"username": "alice", "#,
        )
        .await;

    // Assert
    assert_error(&resp, StatusCode::BAD_REQUEST, "bad_request");
    assert_eq!(count(&app, "SELECT count(*) FROM users").await, 0);
}

#[tokio::test]
async fn json_missing_a_required_field_is_a_400_with_the_error_envelope() {
    // Arrange
    let app = TestApp::spawn().await;

    // Act
    let resp = app
        .post(
            "/api/v1/auth/register",
            None,
            json!({ "username": "alice", "password": "correct horse" }),
        )
        .await;

    // Assert
    assert_error(&resp, StatusCode::BAD_REQUEST, "bad_request");
    assert_eq!(count(&app, "SELECT count(*) FROM users").await, 0);
}

#[tokio::test]
async fn a_text_plain_body_is_refused_with_415_and_the_error_envelope() {
    // Arrange
    let app = TestApp::spawn().await;
    let body = r#"{"username":"alice","email":"alice@example.com","password":"correct horse"}"#;

    // Act
    let resp = app
        .raw("POST", "/api/v1/auth/register", "text/plain", body)
        .await;

    // Assert
    assert_error(
        &resp,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
    );
    assert_eq!(count(&app, "SELECT count(*) FROM users").await, 0);
}

#[tokio::test]
async fn an_unknown_route_is_a_404_not_found_envelope() {
    // Arrange
    let app = TestApp::spawn().await;

    // Act
    let under_api = app.get("/api/v1/no-such-thing", None).await;
    let elsewhere = app.get("/nowhere", None).await;

    // Assert
    assert_error(&under_api, StatusCode::NOT_FOUND, "not_found");
    assert_error(&elsewhere, StatusCode::NOT_FOUND, "not_found");
}

#[tokio::test]
async fn a_wrong_method_is_a_405_envelope() {
    // Arrange
    let app = TestApp::spawn().await;

    // Act
    let resp = app
        .request("DELETE", "/api/v1/auth/register", None, None)
        .await;

    // Assert
    assert_error(&resp, StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed");
    assert_eq!(resp.headers["allow"], "POST");
}

#[tokio::test]
async fn every_405_names_the_methods_the_path_allows() {
    let app = TestApp::spawn().await;
    for (method, path, allow) in [
        ("PUT", "/api/v1/users/me", "DELETE, GET, HEAD, PATCH"),
        ("POST", "/api/v1/users/alice", "GET, HEAD"),
        (
            "TRACE",
            "/api/v1/listings/0190e9a2-7c3b-7000-8000-000000000000",
            "DELETE, GET, HEAD, PATCH",
        ),
        ("DELETE", "/health/live", "GET, HEAD"),
    ] {
        let resp = app.request(method, path, None, None).await;
        assert_eq!(
            resp.status,
            StatusCode::METHOD_NOT_ALLOWED,
            "{method} {path}"
        );
        assert_eq!(resp.headers["allow"], allow, "{method} {path}");
    }
}

#[tokio::test]
async fn a_number_or_boolean_where_text_belongs_is_refused_not_coerced() {
    let app = TestApp::spawn().await;
    let (_, token) = app.signed_up("alice").await;
    let cases = [
        (
            "/api/v1/listings",
            Some(token.as_str()),
            json!({ "title": true, "price_cents": 100, "quantity": 1 }),
        ),
        (
            "/api/v1/auth/logout",
            None,
            json!({ "refresh_token": -4.7e16 }),
        ),
        (
            "/api/v1/auth/token",
            None,
            json!({ "username": 12, "password": "x" }),
        ),
        (
            "/api/v1/listings",
            Some(token.as_str()),
            json!({ "title": "A lamp", "price_cents": "100", "quantity": 1 }),
        ),
        (
            "/api/v1/listings",
            Some(token.as_str()),
            json!({ "title": "A lamp", "price_cents": 1.5, "quantity": 1 }),
        ),
    ];
    for (path, token, body) in cases {
        let resp = app.post(path, token, body.clone()).await;
        assert_error(&resp, StatusCode::BAD_REQUEST, "bad_request");
        assert!(resp.body["error"]["message"].is_string(), "{body}");
    }
    assert_eq!(count(&app, "SELECT count(*) FROM listings").await, 0);
}

#[tokio::test]
async fn a_missing_authorization_header_is_a_401_envelope() {
    // Arrange
    let app = TestApp::spawn().await;

    // Act
    let resp = app.get("/api/v1/users/me", None).await;

    // Assert
    assert_error(&resp, StatusCode::UNAUTHORIZED, "unauthorized");
}

#[tokio::test]
async fn a_non_bearer_authorization_header_is_a_401_envelope() {
    // Arrange
    let app = TestApp::spawn().await;

    // Act
    let resp = app
        .client
        .get("/api/v1/users/me")
        .header("authorization", "Basic YWxpY2U6c2VjcmV0")
        .send()
        .await;
    let resp = collect(resp).await;

    // Assert
    assert_error(&resp, StatusCode::UNAUTHORIZED, "unauthorized");
}

#[tokio::test]
async fn a_body_over_the_limit_is_a_413_envelope_and_writes_nothing() {
    // Arrange
    let app = TestApp::spawn_with(|s| s.max_body_bytes = 1024).await;
    let body = json!({
        "username": "alice",
        "email": "alice@example.com",
        "password": "correct horse",
        "padding": "x".repeat(2048),
    })
    .to_string();

    // Act
    let resp = app
        .raw("POST", "/api/v1/auth/register", "application/json", &body)
        .await;

    // Assert
    assert_error(&resp, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large");
    assert_eq!(count(&app, "SELECT count(*) FROM users").await, 0);
}

#[tokio::test]
async fn a_declared_content_length_over_the_limit_is_refused_before_reading() {
    // Arrange
    let app = TestApp::spawn_with(|s| s.max_body_bytes = 1024).await;
    let body = "x".repeat(2048);

    // Act
    let resp = app
        .client
        .post("/api/v1/auth/register")
        .content_type("application/json")
        .header("content-length", body.len().to_string())
        .body(body)
        .send()
        .await;
    let resp = collect(resp).await;

    // Assert
    assert_error(&resp, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large");
    assert_eq!(count(&app, "SELECT count(*) FROM users").await, 0);
}

#[tokio::test]
async fn a_body_within_the_limit_is_accepted() {
    // Arrange
    let app = TestApp::spawn_with(|s| s.max_body_bytes = 1024).await;

    // Act
    let resp = app.register("alice").await;

    // Assert
    assert_eq!(resp.status, StatusCode::CREATED, "{}", resp.body);
}

#[tokio::test]
async fn a_malformed_uuid_in_the_path_is_a_400_envelope() {
    // Arrange
    let app = TestApp::spawn().await;

    // Act
    let resp = app.get("/api/v1/listings/not-a-uuid", None).await;

    // Assert
    assert_error(&resp, StatusCode::BAD_REQUEST, "bad_request");
}

#[tokio::test]
async fn a_malformed_query_parameter_is_a_400_envelope() {
    // Arrange
    let app = TestApp::spawn().await;

    // Act
    let resp = app.get("/api/v1/listings?limit=lots", None).await;

    // Assert
    assert_error(&resp, StatusCode::BAD_REQUEST, "bad_request");
}

#[tokio::test]
async fn malformed_requests_of_every_kind_get_a_4xx_envelope_never_a_500() {
    // Arrange
    let app = TestApp::spawn_with(|s| s.max_body_bytes = 1024).await;
    let (_, token) = app.signed_up("alice").await;
    let big = "y".repeat(2048);

    // Act
    let answers = [
        app.raw("POST", "/api/v1/auth/token", "application/json", "not json")
            .await,
        app.raw(
            "POST",
            "/api/v1/auth/token",
            "application/x-www-form-urlencoded",
            "a=b",
        )
        .await,
        app.raw(
            "PUT",
            "/api/v1/cart/items/123",
            "application/json",
            r#"{"quantity":1}"#,
        )
        .await,
        app.raw("POST", "/api/v1/listings", "application/json", &big)
            .await,
        app.request(
            "POST",
            "/api/v1/listings",
            Some(&token),
            Some(json!([1, 2, 3])),
        )
        .await,
        app.request(
            "POST",
            "/api/v1/listings",
            Some(&token),
            Some(json!({ "title": 5 })),
        )
        .await,
        app.request("PATCH", "/api/v1/users/me", Some(&token), Some(json!(null)))
            .await,
        app.request("PUT", "/health/live", None, None).await,
        app.get("/api/v1/users/me", Some("garbage")).await,
    ];

    // Assert
    for resp in &answers {
        assert!(
            resp.status.is_client_error(),
            "expected a 4xx, got {}: {}",
            resp.status,
            resp.body
        );
        assert_envelope(resp);
    }
}
