//! `GET /metrics`: request counts and latency by operation, method and status, never by raw
//! path.

use poem::http::StatusCode;
use test_support::TestApp;

#[tokio::test]
async fn metrics_count_requests_by_operation_and_status_in_the_prometheus_format() {
    let app = TestApp::spawn().await;
    let missing = uuid::Uuid::now_v7();
    app.get("/health/live", None).await;
    app.get(&format!("/api/v1/listings/{missing}"), None).await;
    app.get("/no/such/route", None).await;

    let resp = app.client.get("/metrics").send().await;
    resp.assert_status(StatusCode::OK);
    resp.assert_header("content-type", "text/plain; version=0.0.4; charset=utf-8");
    let text = resp.0.into_body().into_string().await.expect("body");

    for series in [
        "# TYPE http_requests_total counter\n",
        "http_requests_total{route=\"get_liveness\",method=\"GET\",status=\"200\"} ",
        "http_requests_total{route=\"get_listing\",method=\"GET\",status=\"404\"} ",
        "http_requests_total{route=\"unmatched\",method=\"GET\",status=\"404\"} ",
        "# TYPE http_request_duration_seconds histogram\n",
        "http_request_duration_seconds_bucket{route=\"get_liveness\",method=\"GET\",le=\"+Inf\"} ",
        "http_request_duration_seconds_count{route=\"get_liveness\",method=\"GET\"} ",
        "http_requests_in_flight ",
        "process_resident_memory_bytes ",
    ] {
        assert!(text.contains(series), "no {series:?} in:\n{text}");
    }
    assert!(
        !text.contains(&missing.to_string()),
        "a raw path became a label:\n{text}"
    );
}
