//! Small request and assertion helpers shared by the test modules of this binary.

use poem::http::StatusCode;
use serde_json::{Value, json};
use test_support::{TestApp, TestResponse};

/// The password `TestApp::register` gives every account.
pub const PASSWORD: &str = "correct horse";

/// PATCH JSON with an optional token.
pub async fn patch(app: &TestApp, path: &str, token: Option<&str>, body: Value) -> TestResponse {
    app.request("PATCH", path, token, Some(body)).await
}

/// PUT JSON with an optional token.
pub async fn put(app: &TestApp, path: &str, token: Option<&str>, body: Value) -> TestResponse {
    app.request("PUT", path, token, Some(body)).await
}

/// DELETE with an optional token.
pub async fn delete(app: &TestApp, path: &str, token: Option<&str>) -> TestResponse {
    app.request("DELETE", path, token, None).await
}

/// Asserts an error answer: the status, the envelope shape and the code.
#[track_caller]
pub fn assert_error(resp: &TestResponse, status: StatusCode, code: &str) {
    assert_eq!(
        resp.status, status,
        "unexpected status; body: {}",
        resp.body
    );
    assert_envelope(resp);
    assert_eq!(
        resp.error_code(),
        code,
        "unexpected code; body: {}",
        resp.body
    );
}

/// Asserts the body is exactly `{"error": {"code": string, "message": string, "details": object}}`.
#[track_caller]
pub fn assert_envelope(resp: &TestResponse) {
    let root = resp
        .body
        .as_object()
        .unwrap_or_else(|| panic!("body is not an object: {}", resp.body));
    assert_eq!(
        root.keys().collect::<Vec<_>>(),
        ["error"],
        "body: {}",
        resp.body
    );
    let error = &resp.body["error"];
    assert!(error["code"].is_string(), "no error.code: {}", resp.body);
    assert!(
        error["message"].as_str().is_some_and(|m| !m.is_empty()),
        "no error.message: {}",
        resp.body
    );
    assert!(
        error["details"].is_object(),
        "error.details is not an object: {}",
        resp.body
    );
}

/// The field names listed in `error.details.fields`, sorted.
pub fn invalid_fields(resp: &TestResponse) -> Vec<String> {
    let fields = resp.body["error"]["details"]["fields"]
        .as_object()
        .unwrap_or_else(|| panic!("no error.details.fields: {}", resp.body));
    let mut names: Vec<String> = fields.keys().cloned().collect();
    names.sort();
    names
}

/// A single-value SQL count.
pub async fn count(app: &TestApp, sql: &'static str) -> i64 {
    sqlx::query_scalar(sql)
        .fetch_one(app.pool())
        .await
        .expect("count query")
}

/// Registers and logs in `username`; returns `(user id, access token, refresh token)`.
pub async fn session(app: &TestApp, username: &str) -> (String, String, String) {
    let reg = app.register(username).await;
    assert_eq!(
        reg.status,
        StatusCode::CREATED,
        "register {username}: {}",
        reg.body
    );
    let (access, refresh) = login_tokens(app, username).await;
    (
        reg.body["id"].as_str().expect("user id").to_owned(),
        access,
        refresh,
    )
}

/// Logs in with the test password; returns `(access token, refresh token)`.
pub async fn login_tokens(app: &TestApp, login: &str) -> (String, String) {
    let resp = app.login(login, PASSWORD).await;
    assert_eq!(resp.status, StatusCode::OK, "login {login}: {}", resp.body);
    tokens_of(&resp)
}

/// `(access token, refresh token)` of a token response.
pub fn tokens_of(resp: &TestResponse) -> (String, String) {
    let field = |name: &str| {
        resp.body[name]
            .as_str()
            .unwrap_or_else(|| panic!("no {name}: {}", resp.body))
            .to_owned()
    };
    (field("access_token"), field("refresh_token"))
}

/// POST /auth/refresh.
pub async fn refresh(app: &TestApp, refresh_token: &str) -> TestResponse {
    app.post(
        "/api/v1/auth/refresh",
        None,
        json!({ "refresh_token": refresh_token }),
    )
    .await
}

/// The `id` of a JSON object, as a string.
pub fn id_of(value: &Value) -> String {
    value["id"]
        .as_str()
        .unwrap_or_else(|| panic!("no id: {value}"))
        .to_owned()
}

/// The ids of `items` in a page, in order.
pub fn item_ids(resp: &TestResponse) -> Vec<String> {
    resp.body["items"]
        .as_array()
        .unwrap_or_else(|| panic!("no items: {}", resp.body))
        .iter()
        .map(id_of)
        .collect()
}

/// Percent-encodes a query-string value (everything but RFC 3986 unreserved characters).
pub fn encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Reduces a response sent through `app.client` directly (for unusual headers) to a `TestResponse`.
pub async fn collect(resp: poem::test::TestResponse) -> TestResponse {
    TestApp::collect(resp).await
}
