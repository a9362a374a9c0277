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

#[tokio::test]
async fn the_client_config_names_the_payment_mode() {
    let app = TestApp::spawn().await;
    let resp = app.get("/api/v1/config", None).await;
    assert_eq!(resp.status, StatusCode::OK, "{:?}", resp.body);
    assert_eq!(resp.body["payment_mode"], "dev");
    assert_eq!(resp.body["stripe_publishable_key"], serde_json::Value::Null);

    let stripe = TestApp::spawn_with(|s| {
        s.stripe.mode = shared::config::PaymentMode::Stripe;
        s.stripe.secret_key = Some(secrecy::SecretString::from("sk_test_config"));
        s.stripe.publishable_key = Some("pk_test_config".into());
    })
    .await;
    let resp = stripe.get("/api/v1/config", None).await;
    assert_eq!(resp.body["payment_mode"], "stripe");
    assert_eq!(resp.body["stripe_publishable_key"], "pk_test_config");
}
