//! A dependency out of reach is a 503 with `Retry-After`, never a 500: the request was fine and
//! a retry shortly will do. What a PostgreSQL restart does to a live connection (SQLSTATE 57P01)
//! is reproduced by terminating the connection's backend.

use poem::http::StatusCode;
use shared::db::StoreError;
use test_support::TestApp;

use crate::helpers::assert_error;

#[tokio::test]
async fn a_backend_terminated_as_by_a_restart_is_an_unavailable_database() {
    let app = TestApp::spawn().await;
    let mut conn = app.pool().acquire().await.expect("connection");

    let err = sqlx::query("SELECT pg_terminate_backend(pg_backend_pid())")
        .execute(&mut *conn)
        .await
        .expect_err("the server ends the connection");

    let store = StoreError::from(err);
    assert!(matches!(store, StoreError::Unavailable(_)), "{store:?}");
}

#[tokio::test]
async fn requests_while_the_database_is_out_of_reach_get_503_with_retry_after() {
    let app = TestApp::spawn().await;
    let (_, token) = app.signed_up("ann").await;
    app.pool().close().await;

    for (path, token) in [
        ("/api/v1/listings", None),
        ("/api/v1/users/me", Some(token.as_str())),
        ("/api/v1/cart", Some(token.as_str())),
    ] {
        let resp = app.get(path, token).await;
        assert_error(&resp, StatusCode::SERVICE_UNAVAILABLE, "unavailable");
        let retry_after = resp.headers.get("retry-after").map(|v| v.to_str().unwrap());
        assert_eq!(retry_after, Some("5"), "{path}");
    }
}
