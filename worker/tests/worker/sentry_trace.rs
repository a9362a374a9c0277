//! One trace from the request to the job: the api (in-process) continues the caller's
//! `sentry-trace` header and stores it with the checkout job; the worker binary's transaction
//! for that job continues it, and the failure of the job is reported with its kind, id and
//! attempt, in the same trace; a 5xx answer of the api is reported as well. Sentry is a local
//! HTTP listener here, so the test reads the envelopes both processes send.

use std::time::Duration;

use serde_json::Value;
use shared::config::SentrySettings;
use test_support::eventually_every;
use wiremock::{Mock, MockServer, ResponseTemplate, matchers::method};

use crate::fleet::{ready_buyer, spawn_worker, stripe_app};

/// The JSON payloads (events and transactions) of every envelope received so far.
async fn payloads(sentry: &MockServer) -> Vec<Value> {
    let requests = sentry.received_requests().await.unwrap_or_default();
    requests
        .iter()
        .flat_map(|r| {
            String::from_utf8_lossy(&r.body)
                .lines()
                .filter_map(|line| serde_json::from_str::<Value>(line).ok())
                .filter(|item| item.get("contexts").is_some())
                .collect::<Vec<_>>()
        })
        .collect()
}

fn trace_id(payload: &Value) -> &str {
    payload["contexts"]["trace"]["trace_id"]
        .as_str()
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_worker_continues_the_trace_of_the_request_that_created_the_job_and_reports_its_failure()
 {
    // Arrange: Sentry is a local listener, for the api in this process and the worker binary.
    let sentry = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&sentry)
        .await;
    let dsn = format!("http://public@{}/1", sentry.address());
    let settings = SentrySettings {
        dsn: Some(dsn.parse().expect("DSN")),
        environment: "test".into(),
        traces_sample_rate: 1.0,
    };
    let _guard = shared::telemetry::init_sentry(&settings, "api", "test");
    // Stripe is unreachable, so every attempt of the checkout fails (and is retried).
    let app = stripe_app("http://127.0.0.1:9").await;
    let (token, address, _) = ready_buyer(&app).await;
    let trace = uuid::Uuid::new_v4().simple().to_string();

    // Act: check out inside the caller's trace, then let a worker run the job.
    let resp = app
        .client
        .post("/api/v1/checkout")
        .header("authorization", format!("Bearer {token}"))
        .header("idempotency-key", "traced")
        .header("sentry-trace", format!("{trace}-{}-1", &trace[..16]))
        .body_json(&serde_json::json!({ "address_id": address }))
        .send()
        .await;
    resp.assert_status(poem::http::StatusCode::ACCEPTED);
    let job: Value = resp.json().await.value().deserialize();
    let job_id = job["job_id"].as_str().expect("job id").to_owned();
    let mut worker = spawn_worker(&app, &[("SENTRY_DSN", &dsn)]);

    // Assert: the api's and the worker's transactions and the failure event share the trace.
    let (sentry, trace) = (&sentry, trace.as_str());
    let output = &worker.output;
    let (api_tx, job_tx, failure) = eventually_every(
        "the api's and the worker's envelopes in the trace",
        Duration::from_secs(30),
        Duration::from_millis(200),
        move || async move {
            let all = payloads(sentry).await;
            let in_trace: Vec<&Value> = all.iter().filter(|p| trace_id(p) == trace)
                .collect();
            let find = |pred: &dyn Fn(&Value) -> bool| {
                in_trace.iter().find(|p| pred(p)).cloned().cloned()
            };
            // Transactions have a start; events do not.
            let is_tx = |p: &Value| p.get("start_timestamp").is_some();
            let api_tx = find(&|p| is_tx(p) && p["transaction"] == "POST create_checkout");
            let job_tx = find(&|p| is_tx(p) && p["transaction"] == "checkout");
            let failure = find(&|p| !is_tx(p) && p["tags"]["job.kind"] == "checkout");
            match (api_tx, job_tx, failure) {
                (Some(a), Some(j), Some(f)) => Ok((a, j, f)),
                (a, j, f) => Err(format!(
                    "missing envelopes (api {}, job {}, failure {}); in trace: {in_trace:#?}; worker output: {output:#?}",
                    a.is_some(),
                    j.is_some(),
                    f.is_some(),
                )),
            }
        },
    )
    .await;
    assert_eq!(api_tx["tags"]["service"], "api");
    assert_eq!(job_tx["tags"]["service"], "worker");
    assert_eq!(job_tx["contexts"]["trace"]["op"], "queue.process");
    assert_eq!(failure["tags"]["job.id"], job_id.as_str());
    assert_eq!(failure["tags"]["job.attempt"], "1");
    let exception = &failure["exception"]["values"][0]["value"];
    assert!(
        exception
            .as_str()
            .is_some_and(|e| e.contains("payment provider unavailable")),
        "{failure:#}"
    );
    let message = failure["message"].as_str().unwrap_or_default();
    assert!(
        message.starts_with(&format!("checkout job {job_id} failed")),
        "{failure:#}"
    );
    worker.signal("TERM");
    assert!(worker.wait_for_exit(Duration::from_secs(20)).success());

    // A 5xx answer of the api is reported too, with its route.
    app.allow_queued_jobs("the checkout fails on purpose and stays queued for its retry");
    app.pool().close().await;
    let ready = app.get("/health/ready", None).await;
    assert_eq!(ready.status.as_u16(), 503);
    eventually_every(
        "the 503 to be reported",
        Duration::from_secs(10),
        Duration::from_millis(100),
        move || async move {
            payloads(sentry)
                .await
                .iter()
                .any(|p| p["message"] == "GET get_readiness answered 503 Service Unavailable")
                .then_some(())
        },
    )
    .await;
}
