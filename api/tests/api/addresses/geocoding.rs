//! The geocoding job against a fake of Google's Geocoding API: every answer Google can give,
//! retries, the cache and the fleet-wide rate limit.

use shared::jobs::Job as _;
use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use poem::http::StatusCode;
use serde_json::json;
use shared::geocode::{GeocodeDeps, Geocoder, MAX_ATTEMPTS, ProcessOutcome};
use wiremock::{
    Mock, MockServer, Request, Respond, ResponseTemplate,
    matchers::{method, path, query_param},
};

use super::{
    API_KEY, GEOCODE_PATH, add_address, address_body, answer, app_with_google, confirm,
    get_address, get_job, google_ok, google_status,
};
use crate::helpers::assert_error;

fn statuses(outcomes: &[ProcessOutcome]) -> Vec<String> {
    outcomes
        .iter()
        .map(|o| match o {
            ProcessOutcome::Recorded { status, .. } => status.as_str().to_owned(),
            ProcessOutcome::Retry { code, .. } => format!("retry:{code}"),
            ProcessOutcome::Failed { code } => format!("failed:{code}"),
            ProcessOutcome::Skipped => "skipped".into(),
        })
        .collect()
}

#[tokio::test]
async fn a_google_match_stores_every_field_and_verifies_the_address() {
    // Arrange
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(GEOCODE_PATH))
        .and(query_param(
            "address",
            "1600 Amphitheatre Pkwy, Building 40, Mountain View, CA 94043",
        ))
        .and(query_param("components", "country:US"))
        .and(query_param("key", API_KEY))
        .respond_with(ResponseTemplate::new(200).set_body_json(google_ok(false)))
        .expect(1)
        .mount(&server)
        .await;
    let app = app_with_google(&server).await;
    let (_, token) = app.signed_up("alice").await;
    let (id, job) = add_address(&app, &token, address_body("1600 Amphitheatre Pkwy")).await;

    // Act
    let outcomes = app.run_geocode_jobs().await;

    // Assert
    assert_eq!(statuses(&outcomes), ["verified"]);
    let address = get_address(&app, &token, &id).await.body;
    assert_eq!(address["status"], "verified");
    assert_eq!(
        address["formatted_address"],
        "1600 Amphitheatre Pkwy, Mountain View, CA 94043, USA"
    );
    assert_eq!(address["latitude"], 37.4224764);
    assert_eq!(address["longitude"], -122.0842499);
    assert_eq!(address["place_id"], "ChIJ2eUgeAK6j4ARbn5u_wAGqWA");
    assert_eq!(address["location_type"], "ROOFTOP");
    assert_eq!(address["components"][4]["short_name"], "CA");
    assert!(address["error"].is_null());
    let job = get_job(&app, &token, &job).await.body;
    assert_eq!(job["status"], "succeeded");
    assert_eq!(job["attempts"], 1);
    assert_eq!(
        job["result"],
        json!({ "address_id": id, "status": "verified" })
    );
}

#[tokio::test]
async fn a_partial_match_needs_review_and_the_buyer_can_confirm_it() {
    // Arrange
    let server = MockServer::start().await;
    answer(&server, google_ok(true), None).await;
    let app = app_with_google(&server).await;
    let (_, token) = app.signed_up("alice").await;
    let (id, _) = add_address(&app, &token, address_body("1600 Amphitheatre")).await;
    assert_eq!(statuses(&app.run_geocode_jobs().await), ["needs_review"]);
    assert_eq!(
        get_address(&app, &token, &id).await.body["status"],
        "needs_review"
    );

    // Act
    let confirmed = confirm(&app, &token, &id).await;

    // Assert
    assert_eq!(confirmed.status, StatusCode::OK, "{}", confirmed.body);
    assert_eq!(confirmed.body["status"], "verified");
    assert_eq!(confirmed.body["place_id"], "ChIJ2eUgeAK6j4ARbn5u_wAGqWA");
    assert_eq!(
        get_address(&app, &token, &id).await.body["status"],
        "verified"
    );
    let again = confirm(&app, &token, &id).await;
    assert_error(&again, StatusCode::CONFLICT, "address_not_reviewable");
}

#[tokio::test]
async fn zero_results_make_the_address_invalid() {
    // Arrange
    let server = MockServer::start().await;
    answer(&server, google_status("ZERO_RESULTS", None), None).await;
    let app = app_with_google(&server).await;
    let (_, token) = app.signed_up("alice").await;
    let (id, job) = add_address(&app, &token, address_body("1 Nowhere Lane")).await;

    // Act
    let outcomes = app.run_geocode_jobs().await;

    // Assert
    assert_eq!(statuses(&outcomes), ["invalid"]);
    let address = get_address(&app, &token, &id).await.body;
    assert_eq!(address["status"], "invalid");
    assert!(address["error"].as_str().is_some_and(|e| !e.is_empty()));
    assert!(address["latitude"].is_null());
    assert_eq!(
        get_job(&app, &token, &job).await.body["status"],
        "succeeded"
    );
    let resp = confirm(&app, &token, &id).await;
    assert_error(&resp, StatusCode::CONFLICT, "address_not_reviewable");
}

#[tokio::test]
async fn over_query_limit_is_retried_with_backoff_until_google_answers() {
    // Arrange: two quota answers, then a match.
    let server = MockServer::start().await;
    answer(
        &server,
        google_status(
            "OVER_QUERY_LIMIT",
            Some("You have exceeded your rate-limit for this API."),
        ),
        Some(2),
    )
    .await;
    answer(&server, google_ok(false), None).await;
    let app = app_with_google(&server).await;
    let (_, token) = app.signed_up("alice").await;
    let (id, job) = add_address(&app, &token, address_body("1600 Amphitheatre Pkwy")).await;

    // Act
    let first = app.run_geocode_jobs().await;
    let in_between = get_job(&app, &token, &job).await.body;
    let second = app.run_geocode_jobs().await;
    let third = app.run_geocode_jobs().await;

    // Assert
    assert_eq!(statuses(&first), ["retry:geocoder_unavailable"]);
    assert_eq!(statuses(&second), ["retry:geocoder_unavailable"]);
    assert_eq!(statuses(&third), ["verified"]);
    // Exponential backoff with jitter: 1–2 s after the first failure, 2–4 s after the second.
    let first_delay = first[0].retry_in().unwrap();
    let second_delay = second[0].retry_in().unwrap();
    assert!((Duration::from_secs(1)..=Duration::from_secs(2)).contains(&first_delay));
    assert!((Duration::from_secs(2)..=Duration::from_secs(4)).contains(&second_delay));
    assert_eq!(in_between["status"], "queued");
    assert!(
        in_between["error"].is_null(),
        "a retrying job shows no error"
    );
    let job = get_job(&app, &token, &job).await.body;
    assert_eq!(job["status"], "succeeded");
    assert_eq!(job["attempts"], 3);
    assert_eq!(
        get_address(&app, &token, &id).await.body["status"],
        "verified"
    );
    assert_eq!(server.received_requests().await.unwrap().len(), 3);
}

#[tokio::test]
async fn a_geocoder_that_never_recovers_fails_the_address_at_the_attempt_cap() {
    // Arrange
    let server = MockServer::start().await;
    answer(&server, google_status("UNKNOWN_ERROR", None), None).await;
    let app = app_with_google(&server).await;
    let (_, token) = app.signed_up("alice").await;
    let (id, job) = add_address(&app, &token, address_body("1600 Amphitheatre Pkwy")).await;

    // Act
    let mut all = Vec::new();
    for _ in 0..MAX_ATTEMPTS + 2 {
        all.extend(app.run_geocode_jobs().await);
    }

    // Assert
    let retries = usize::try_from(MAX_ATTEMPTS - 1).unwrap();
    let mut expected = vec!["retry:geocoder_unavailable".to_owned(); retries];
    expected.push("failed:geocoder_unavailable".into());
    assert_eq!(statuses(&all), expected);
    let job = get_job(&app, &token, &job).await.body;
    assert_eq!(job["status"], "failed");
    assert_eq!(job["attempts"], MAX_ATTEMPTS);
    assert_eq!(job["error"]["code"], "geocoder_unavailable");
    let address = get_address(&app, &token, &id).await.body;
    assert_eq!(address["status"], "failed");
    assert!(address["error"].as_str().unwrap().contains("UNKNOWN_ERROR"));
}

#[tokio::test]
async fn request_denied_fails_at_once_after_one_call_without_leaking_the_key() {
    // Arrange
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(GEOCODE_PATH))
        .respond_with(ResponseTemplate::new(200).set_body_json(google_status(
            "REQUEST_DENIED",
            Some("The provided API key is invalid."),
        )))
        .expect(1)
        .mount(&server)
        .await;
    let app = app_with_google(&server).await;
    let (_, token) = app.signed_up("alice").await;
    let (id, job) = add_address(&app, &token, address_body("1600 Amphitheatre Pkwy")).await;

    // Act
    let first = app.run_geocode_jobs().await;
    let later = app.run_geocode_jobs().await;

    // Assert
    assert_eq!(statuses(&first), ["failed:geocoder_request_denied"]);
    assert!(later.is_empty(), "nothing left to retry: {later:?}");
    let job = get_job(&app, &token, &job).await.body;
    assert_eq!(job["status"], "failed");
    assert_eq!(job["attempts"], 1);
    assert_eq!(job["error"]["code"], "geocoder_request_denied");
    let message = job["error"]["message"].as_str().unwrap();
    assert!(message.contains("REQUEST_DENIED") && message.contains("API key is invalid"));
    let address = get_address(&app, &token, &id).await.body;
    assert_eq!(address["status"], "failed");
    for text in [job.to_string(), address.to_string()] {
        assert!(!text.contains(API_KEY), "the key leaked: {text}");
    }
}

#[tokio::test]
async fn invalid_request_fails_at_once() {
    let server = MockServer::start().await;
    answer(&server, google_status("INVALID_REQUEST", None), None).await;
    let app = app_with_google(&server).await;
    let (_, token) = app.signed_up("alice").await;
    add_address(&app, &token, address_body("1600 Amphitheatre Pkwy")).await;

    let outcomes = app.run_geocode_jobs().await;

    assert_eq!(statuses(&outcomes), ["failed:geocoder_invalid_request"]);
    assert_eq!(server.received_requests().await.unwrap().len(), 1);
}

#[tokio::test]
async fn a_server_error_or_a_timeout_is_retried() {
    // Arrange: a 503, then an answer slower than the 300 ms timeout, then a match.
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(GEOCODE_PATH))
        .respond_with(ResponseTemplate::new(503))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(GEOCODE_PATH))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(google_ok(false))
                .set_delay(Duration::from_secs(2)),
        )
        .up_to_n_times(1)
        .mount(&server)
        .await;
    answer(&server, google_ok(false), None).await;
    let app = app_with_google(&server).await;
    let (_, token) = app.signed_up("alice").await;
    let (id, job) = add_address(&app, &token, address_body("1600 Amphitheatre Pkwy")).await;

    // Act
    let started = Instant::now();
    let mut all = app.run_geocode_jobs().await;
    all.extend(app.run_geocode_jobs().await);
    all.extend(app.run_geocode_jobs().await);

    // Assert
    assert_eq!(
        statuses(&all),
        [
            "retry:geocoder_unavailable",
            "retry:geocoder_unavailable",
            "verified"
        ]
    );
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "the timeout did not cut the call short"
    );
    assert_eq!(get_job(&app, &token, &job).await.body["attempts"], 3);
    assert_eq!(
        get_address(&app, &token, &id).await.body["status"],
        "verified"
    );
}

#[tokio::test]
async fn the_same_address_is_geocoded_once_thanks_to_the_cache() {
    // Arrange
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(GEOCODE_PATH))
        .respond_with(ResponseTemplate::new(200).set_body_json(google_ok(false)))
        .expect(1)
        .mount(&server)
        .await;
    let app = app_with_google(&server).await;
    let (_, alice) = app.signed_up("alice").await;
    let (_, bob) = app.signed_up("bob").await;
    let (first, _) = add_address(&app, &alice, address_body("1600 Amphitheatre Pkwy")).await;
    app.run_geocode_jobs().await;

    // Act: the same address, typed differently, by someone else.
    let mut again = address_body("1600  AMPHITHEATRE pkwy ");
    again["city"] = json!("mountain view");
    let (second, _) = add_address(&app, &bob, again).await;
    let outcomes = app.run_geocode_jobs().await;

    // Assert (the fake's `expect(1)` is verified when it is dropped)
    assert_eq!(statuses(&outcomes), ["verified"]);
    let a = get_address(&app, &alice, &first).await.body;
    let b = get_address(&app, &bob, &second).await.body;
    assert_eq!(a["place_id"], b["place_id"]);
    assert_eq!(b["latitude"], 37.4224764);
    server.verify().await;
}

#[tokio::test]
async fn an_address_deleted_before_geocoding_costs_no_call() {
    let server = MockServer::start().await;
    answer(&server, google_ok(false), None).await;
    let app = app_with_google(&server).await;
    let (_, token) = app.signed_up("alice").await;
    let (id, job) = add_address(&app, &token, address_body("1600 Amphitheatre Pkwy")).await;
    crate::helpers::delete(&app, &format!("/api/v1/addresses/{id}"), Some(&token)).await;

    let outcomes = app.run_geocode_jobs().await;

    assert_eq!(statuses(&outcomes), ["failed:address_deleted"]);
    assert_eq!(get_job(&app, &token, &job).await.body["status"], "failed");
    assert!(server.received_requests().await.unwrap().is_empty());
}

/// Answers like Google and records when each request arrived.
struct Recording {
    arrivals: Arc<Mutex<Vec<Instant>>>,
}

impl Respond for Recording {
    fn respond(&self, _: &Request) -> ResponseTemplate {
        self.arrivals.lock().unwrap().push(Instant::now());
        ResponseTemplate::new(200).set_body_json(google_ok(false))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_workers_sharing_redis_never_exceed_the_configured_rate_together() {
    // Arrange: 5 requests per second for the whole fleet; two "worker instances", each with its
    // own limiter and Redis connection, share only the Redis prefix.
    const QPS: usize = 5;
    const JOBS: usize = 16;
    let server = MockServer::start().await;
    let arrivals = Arc::new(Mutex::new(Vec::new()));
    Mock::given(method("GET"))
        .and(path(GEOCODE_PATH))
        .respond_with(Recording {
            arrivals: Arc::clone(&arrivals),
        })
        .mount(&server)
        .await;
    let mut app = app_with_google(&server).await;
    app.settings.geocoder.max_qps = QPS as u32;
    let (_, token) = app.signed_up("alice").await;
    for n in 0..JOBS {
        add_address(&app, &token, address_body(&format!("{n} Main St"))).await;
    }
    let worker = |redis| {
        let mut deps = GeocodeDeps::new(
            app.pool().clone(),
            redis,
            &app.settings.redis_prefix,
            Geocoder::from_settings(&app.settings.geocoder).unwrap(),
            &app.settings.geocoder,
        );
        deps.max_rate_wait = Duration::from_secs(30);
        deps
    };
    // Two connections of their own, as two worker processes would have.
    let client = app.state.redis_client.clone();
    let a = worker(shared::kv::connect_redis(&client).await.unwrap());
    let b = worker(shared::kv::connect_redis(&client).await.unwrap());
    let mut conn = app.pool().acquire().await.unwrap();
    let ids = shared::db::jobs::queued_ids(&mut conn, shared::jobs::GeocodeAddress::NAME)
        .await
        .unwrap();
    drop(conn);

    // Act: every job at once, alternating between the two instances.
    let runs: Vec<_> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| {
            let deps = if i % 2 == 0 { a.clone() } else { b.clone() };
            let id = *id;
            tokio::spawn(async move { shared::geocode::process(&deps, id).await.unwrap() })
        })
        .collect();
    let mut outcomes = Vec::new();
    for run in runs {
        outcomes.push(run.await.unwrap());
    }

    // Assert: all verified, and any QPS + 1 consecutive arrivals span at least a second. The
    // limiter spaces grants exactly 1/QPS apart; the tolerance only absorbs the few
    // milliseconds between a grant and the request reaching the fake. Two independent budgets
    // would put about 2 × QPS requests into a second.
    assert!(
        outcomes
            .iter()
            .all(|o| statuses(std::slice::from_ref(o)) == ["verified"]),
        "{outcomes:?}"
    );
    let mut arrivals = arrivals.lock().unwrap().clone();
    arrivals.sort();
    assert_eq!(arrivals.len(), JOBS);
    let tolerance = Duration::from_millis(60);
    for (i, window) in arrivals.windows(QPS + 1).enumerate() {
        let span = window[QPS] - window[0];
        assert!(
            span + tolerance >= Duration::from_secs(1),
            "requests {i}..={} arrived within {span:?}",
            i + QPS
        );
    }
    let total = arrivals[JOBS - 1] - arrivals[0];
    let expected = Duration::from_secs(1) / QPS as u32 * (JOBS as u32 - 1);
    assert!(total + tolerance >= expected, "{total:?} < {expected:?}");
}

#[tokio::test]
async fn a_job_finding_no_free_rate_limit_slot_is_deferred_without_using_an_attempt() {
    // Arrange: one request per second, and no waiting for a slot.
    let server = MockServer::start().await;
    answer(&server, google_ok(false), None).await;
    let mut app = app_with_google(&server).await;
    app.settings.geocoder.max_qps = 1;
    let (_, token) = app.signed_up("alice").await;
    add_address(&app, &token, address_body("1 Main St")).await;
    let (_, second_job) = add_address(&app, &token, address_body("2 Main St")).await;
    let mut deps = app.geocode_deps();
    deps.max_rate_wait = Duration::ZERO;
    let mut conn = app.pool().acquire().await.unwrap();
    let ids = shared::db::jobs::queued_ids(&mut conn, shared::jobs::GeocodeAddress::NAME)
        .await
        .unwrap();
    drop(conn);

    // Act
    let mut outcomes = Vec::new();
    for id in ids {
        outcomes.push(shared::geocode::process(&deps, id).await.unwrap());
    }

    // Assert
    assert_eq!(statuses(&outcomes), ["verified", "retry:rate_limited"]);
    let retry_in = outcomes[1].retry_in().unwrap();
    assert!(retry_in <= Duration::from_secs(2), "{retry_in:?}");
    let job = get_job(&app, &token, &second_job).await.body;
    assert_eq!(job["status"], "queued");
    assert_eq!(job["attempts"], 0, "a deferral is not an attempt");
    assert_eq!(server.received_requests().await.unwrap().len(), 1);
    app.allow_queued_jobs("the deferred job, queued again with no attempt used, is the point");
}
