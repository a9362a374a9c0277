use poem::http::StatusCode;
use test_support::TestApp;

#[tokio::test]
async fn liveness_answers_ok() {
    let app = TestApp::spawn().await;
    let resp = app.get("/health/live", None).await;
    assert_eq!(resp.status, StatusCode::OK);
    assert_eq!(resp.body["status"], "ok");
}

#[tokio::test]
async fn readiness_checks_postgres_and_redis() {
    let app = TestApp::spawn().await;
    let resp = app.get("/health/ready", None).await;
    assert_eq!(resp.status, StatusCode::OK, "{:?}", resp.body);
}

#[tokio::test]
async fn readiness_is_503_when_postgres_is_unreachable() {
    let app = TestApp::spawn().await;
    app.pool().close().await;
    let resp = app.get("/health/ready", None).await;
    assert_eq!(resp.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(resp.error_code(), "unavailable");
}
