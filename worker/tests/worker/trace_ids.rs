//! The trace id of a request on the log lines of the jobs it caused: the api (in-process) takes
//! the caller's W3C `traceparent`, stores it with the checkout job and pushes it with the task;
//! the worker binary's log lines for that job carry the same `trace_id`. Request ids: the api
//! answers with an `X-Request-Id` of its own unless the peer is a trusted proxy.

use std::time::Duration;

use serde_json::Value;
use test_support::stripe::stripe_fake;

use crate::fleet::{ready_buyer, spawn_worker, stripe_app};

/// The `trace_id` of the span list of a JSON log line (the delivery's `handle` span).
fn trace_of(line: &Value) -> Option<&str> {
    line["spans"]
        .as_array()?
        .iter()
        .find_map(|span| span["trace_id"].as_str())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_checkout_jobs_log_lines_carry_the_trace_id_of_the_request_that_created_it() {
    // Arrange
    let (stripe, _) = stripe_fake().await;
    let app = stripe_app(&stripe.uri()).await;
    let (token, address, _) = ready_buyer(&app).await;
    let trace = uuid::Uuid::new_v4().simple().to_string();

    // Act: check out inside the caller's trace (and claiming a request id of its own), then
    // let a worker run the job.
    let resp = app
        .client
        .post("/api/v1/checkout")
        .header("authorization", format!("Bearer {token}"))
        .header("idempotency-key", "traced")
        .header("traceparent", format!("00-{trace}-00f067aa0ba902b7-01"))
        .header("x-request-id", "chosen-by-the-client")
        .body_json(&serde_json::json!({ "address_id": address }))
        .send()
        .await;
    resp.assert_status(poem::http::StatusCode::ACCEPTED);
    let request_id = resp
        .0
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let job: Value = resp.json().await.value().deserialize();
    let job_id = job["job_id"].as_str().expect("job id").to_owned();
    let mut worker = spawn_worker(&app, &[]);
    let done = worker.wait_for_message("job done", Duration::from_secs(30));

    // Assert: the job row and the worker's lines for the job carry the request's trace id.
    let stored: Option<String> =
        sqlx::query_scalar("SELECT trace_context->>'trace_id' FROM jobs WHERE id = $1::uuid")
            .bind(&job_id)
            .fetch_one(app.pool())
            .await
            .expect("job row");
    assert_eq!(stored.as_deref(), Some(trace.as_str()));
    assert_eq!(trace_of(&done), Some(trace.as_str()), "{done}");
    let job_lines: Vec<Value> = worker
        .output
        .iter()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|line| {
            line["spans"].as_array().is_some_and(|spans| {
                spans
                    .iter()
                    .any(|span| span["job.id"].as_str() == Some(job_id.as_str()))
            })
        })
        .collect();
    assert!(!job_lines.is_empty());
    for line in &job_lines {
        assert_eq!(trace_of(line), Some(trace.as_str()), "{line}");
    }
    // The client is no trusted proxy: its request id is replaced by one of the api's.
    let request_id = request_id.expect("an X-Request-Id answer");
    assert_ne!(request_id, "chosen-by-the-client");
    assert_eq!(request_id.len(), 32, "{request_id}");
}
