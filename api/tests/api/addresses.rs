//! Addresses over HTTP: creation (202 + job), validation, ownership, soft deletion, review, and
//! the geocoding job against a local fake of Google's Geocoding API (`geocoding`).

mod geocoding;

use std::time::Duration;

use poem::http::StatusCode;
use secrecy::SecretString;
use serde_json::{Value, json};
use shared::{config::GeocoderProvider, geocode::ProcessOutcome};
use test_support::{TestApp, TestResponse};
use wiremock::{
    Mock, MockServer, ResponseTemplate,
    matchers::{method, path},
};

use crate::helpers::{assert_error, count, delete, invalid_fields};

/// The path the fake serves, like Google's.
const GEOCODE_PATH: &str = "/maps/api/geocode/json";

/// The API key the tests configure; it must never show up in an answer or a job row.
const API_KEY: &str = "AIzaSyTestOnlyKey0000000000000000000000";

/// An app whose geocoder is Google at `server`, with a short timeout.
async fn app_with_google(server: &MockServer) -> TestApp {
    let url = format!("{}{GEOCODE_PATH}", server.uri());
    TestApp::spawn_with(|s| {
        s.geocoder.provider = GeocoderProvider::Google;
        s.geocoder.google_api_key = Some(SecretString::from(API_KEY));
        s.geocoder.google_geocoding_url = url;
        s.geocoder.timeout = Duration::from_millis(300);
    })
    .await
}

/// A Google answer with one result, as the Geocoding API sends it.
fn google_ok(partial_match: bool) -> Value {
    let mut result = json!({
        "address_components": [
            { "long_name": "1600", "short_name": "1600", "types": ["street_number"] },
            { "long_name": "Amphitheatre Parkway", "short_name": "Amphitheatre Pkwy", "types": ["route"] },
            { "long_name": "Mountain View", "short_name": "Mountain View", "types": ["locality", "political"] },
            { "long_name": "Santa Clara County", "short_name": "Santa Clara County", "types": ["administrative_area_level_2", "political"] },
            { "long_name": "California", "short_name": "CA", "types": ["administrative_area_level_1", "political"] },
            { "long_name": "United States", "short_name": "US", "types": ["country", "political"] },
            { "long_name": "94043", "short_name": "94043", "types": ["postal_code"] }
        ],
        "formatted_address": "1600 Amphitheatre Pkwy, Mountain View, CA 94043, USA",
        "geometry": {
            "location": { "lat": 37.4224764, "lng": -122.0842499 },
            "location_type": "ROOFTOP",
            "viewport": {
                "northeast": { "lat": 37.4238253802915, "lng": -122.0829009197085 },
                "southwest": { "lat": 37.4211274197085, "lng": -122.0855988802915 }
            }
        },
        "place_id": "ChIJ2eUgeAK6j4ARbn5u_wAGqWA",
        "plus_code": { "compound_code": "CWC8+W5 Mountain View, CA, USA", "global_code": "849VCWC8+W5" },
        "types": ["street_address"]
    });
    if partial_match {
        result["partial_match"] = json!(true);
    }
    json!({ "results": [result], "status": "OK" })
}

/// A Google answer without results (`ZERO_RESULTS`, `OVER_QUERY_LIMIT`, ...).
fn google_status(status: &str, error_message: Option<&str>) -> Value {
    let mut body = json!({ "results": [], "status": status });
    if let Some(m) = error_message {
        body["error_message"] = json!(m);
    }
    body
}

/// Mounts a fake answer with HTTP 200, as Google answers every status.
async fn answer(server: &MockServer, body: Value, times: Option<u64>) {
    let mut mock = Mock::given(method("GET"))
        .and(path(GEOCODE_PATH))
        .respond_with(ResponseTemplate::new(200).set_body_json(body));
    if let Some(n) = times {
        mock = mock.up_to_n_times(n);
    }
    mock.mount(server).await;
}

/// A valid address body; `line1` varies it.
fn address_body(line1: &str) -> Value {
    json!({
        "line1": line1,
        "line2": "Building 40",
        "city": "Mountain View",
        "region": "CA",
        "postal_code": "94043",
        "country": "US"
    })
}

/// `POST /addresses`, asserting the 202.
async fn add_address(app: &TestApp, token: &str, body: Value) -> (String, String) {
    let resp = app.post("/api/v1/addresses", Some(token), body).await;
    assert_eq!(resp.status, StatusCode::ACCEPTED, "{}", resp.body);
    let address = resp.body["address"]["id"].as_str().expect("address id");
    let job = resp.body["job_id"].as_str().expect("job id");
    (address.to_owned(), job.to_owned())
}

async fn get_address(app: &TestApp, token: &str, id: &str) -> TestResponse {
    app.get(&format!("/api/v1/addresses/{id}"), Some(token))
        .await
}

async fn get_job(app: &TestApp, token: &str, id: &str) -> TestResponse {
    app.get(&format!("/api/v1/jobs/{id}"), Some(token)).await
}

async fn confirm(app: &TestApp, token: &str, id: &str) -> TestResponse {
    app.post(
        &format!("/api/v1/addresses/{id}/confirm"),
        Some(token),
        json!({}),
    )
    .await
}

#[tokio::test]
async fn a_new_address_is_accepted_as_pending_with_a_job_to_poll() {
    // Arrange
    let app = TestApp::spawn().await;
    let (_, token) = app.signed_up("alice").await;

    // Act
    let resp = app
        .post(
            "/api/v1/addresses",
            Some(&token),
            address_body(" 1600 Amphitheatre Pkwy "),
        )
        .await;

    // Assert
    assert_eq!(resp.status, StatusCode::ACCEPTED, "{}", resp.body);
    let address = &resp.body["address"];
    assert_eq!(address["status"], "pending");
    assert_eq!(address["line1"], "1600 Amphitheatre Pkwy");
    assert_eq!(address["country"], "US");
    for field in [
        "formatted_address",
        "latitude",
        "longitude",
        "place_id",
        "location_type",
        "components",
        "error",
    ] {
        assert!(address[field].is_null(), "{field}: {}", resp.body);
    }
    assert!(address["created_at"].is_string());
    let job_id = resp.body["job_id"].as_str().unwrap();
    assert_eq!(resp.body["status_url"], format!("/api/v1/jobs/{job_id}"));
    let job = get_job(&app, &token, job_id).await;
    assert_eq!(job.body["kind"], "geocode_address");
    assert_eq!(job.body["status"], "queued");
    let list = app.get("/api/v1/addresses", Some(&token)).await;
    assert_eq!(list.body["items"].as_array().unwrap().len(), 1);
    app.allow_queued_jobs("the address as accepted, before its geocoding job runs, is the point");
}

#[tokio::test]
async fn invalid_fields_are_a_422_naming_each_field_and_nothing_is_stored() {
    // Arrange
    let app = TestApp::spawn().await;
    let (_, token) = app.signed_up("alice").await;
    let bodies = [
        (
            json!({ "line1": " ", "city": "", "postal_code": "", "country": "" }),
            vec!["city", "country", "line1", "postal_code"],
        ),
        (
            json!({ "line1": "x".repeat(201), "line2": "y".repeat(201), "city": "Town",
                    "region": "r".repeat(101), "postal_code": "12#45", "country": "XX" }),
            vec!["country", "line1", "line2", "postal_code", "region"],
        ),
        (
            json!({ "line1": "1 Main St", "city": "Town", "postal_code": "12345", "country": "USA" }),
            vec!["country"],
        ),
    ];

    for (body, fields) in bodies {
        // Act
        let resp = app.post("/api/v1/addresses", Some(&token), body).await;

        // Assert
        assert_error(&resp, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
        assert_eq!(invalid_fields(&resp), fields);
    }
    assert_eq!(count(&app, "SELECT count(*) FROM addresses").await, 0);
    assert_eq!(count(&app, "SELECT count(*) FROM jobs").await, 0);
}

#[tokio::test]
async fn a_body_missing_a_required_field_is_refused_and_nothing_is_stored() {
    // Arrange
    let app = TestApp::spawn().await;
    let (_, token) = app.signed_up("alice").await;

    // Act
    let resp = app
        .post(
            "/api/v1/addresses",
            Some(&token),
            json!({ "line1": "1 Main St", "postal_code": "12345", "country": "US" }),
        )
        .await;

    // Assert: a structurally incomplete body is a 400, like every other endpoint's.
    assert_error(&resp, StatusCode::BAD_REQUEST, "bad_request");
    assert_eq!(count(&app, "SELECT count(*) FROM addresses").await, 0);
}

#[tokio::test]
async fn addresses_require_authentication() {
    let app = TestApp::spawn().await;
    let resp = app
        .post("/api/v1/addresses", None, address_body("1 Main St"))
        .await;
    assert_error(&resp, StatusCode::UNAUTHORIZED, "unauthorized");
    let resp = app.get("/api/v1/addresses", None).await;
    assert_error(&resp, StatusCode::UNAUTHORIZED, "unauthorized");
}

#[tokio::test]
async fn another_user_gets_404_on_get_delete_and_confirm_and_sees_none_in_the_list() {
    // Arrange
    let server = MockServer::start().await;
    answer(&server, google_ok(true), None).await;
    let app = app_with_google(&server).await;
    let (_, alice) = app.signed_up("alice").await;
    let (_, mallory) = app.signed_up("mallory").await;
    let (id, job) = add_address(&app, &alice, address_body("1600 Amphitheatre Pkwy")).await;
    app.run_geocode_jobs().await;

    // Act + Assert
    let path = format!("/api/v1/addresses/{id}");
    assert_error(
        &app.get(&path, Some(&mallory)).await,
        StatusCode::NOT_FOUND,
        "address_not_found",
    );
    assert_error(
        &confirm(&app, &mallory, &id).await,
        StatusCode::NOT_FOUND,
        "address_not_found",
    );
    assert_error(
        &delete(&app, &path, Some(&mallory)).await,
        StatusCode::NOT_FOUND,
        "address_not_found",
    );
    assert_error(
        &get_job(&app, &mallory, &job).await,
        StatusCode::NOT_FOUND,
        "job_not_found",
    );
    let list = app.get("/api/v1/addresses", Some(&mallory)).await;
    assert_eq!(list.body["items"], json!([]));
    let own = get_address(&app, &alice, &id).await;
    assert_eq!(
        own.body["status"], "needs_review",
        "untouched: {}",
        own.body
    );
}

#[tokio::test]
async fn a_deleted_address_disappears_but_an_order_keeps_its_snapshot() {
    // Arrange
    let app = TestApp::spawn().await;
    let (_, seller) = app.signed_up("seller").await;
    let (buyer_id, buyer) = app.signed_up("buyer").await;
    let listing = app.create_listing(&seller, "A lamp", 1_500, 3).await;
    let address = app.verified_address(&buyer_id).await;
    app.add_to_cart(&buyer, listing["id"].as_str().unwrap(), 1)
        .await;
    let accepted = app.checkout(&buyer, &address, "key-1").await;
    assert_eq!(accepted.status, StatusCode::ACCEPTED, "{}", accepted.body);
    let outcomes = app.run_checkout_jobs().await;
    let job = get_job(&app, &buyer, accepted.body["job_id"].as_str().unwrap()).await;
    let order_id = job.body["result"]["order_id"].as_str().expect("order");
    assert_eq!(outcomes.len(), 1);

    // Act
    let path = format!("/api/v1/addresses/{address}");
    let deleted = delete(&app, &path, Some(&buyer)).await;

    // Assert
    assert_eq!(deleted.status, StatusCode::NO_CONTENT, "{}", deleted.body);
    assert_error(
        &app.get(&path, Some(&buyer)).await,
        StatusCode::NOT_FOUND,
        "address_not_found",
    );
    assert_error(
        &delete(&app, &path, Some(&buyer)).await,
        StatusCode::NOT_FOUND,
        "address_not_found",
    );
    let list = app.get("/api/v1/addresses", Some(&buyer)).await;
    assert_eq!(list.body["items"], json!([]));
    let order = app
        .get(&format!("/api/v1/orders/{order_id}"), Some(&buyer))
        .await;
    assert_eq!(order.body["shipping_address"]["address_id"], address);
    assert_eq!(order.body["shipping_address"]["line1"], "1 Main St");
    assert_eq!(
        count(
            &app,
            "SELECT count(*) FROM addresses WHERE deleted_at IS NOT NULL"
        )
        .await,
        1,
        "soft delete keeps the row"
    );
}

#[tokio::test]
async fn with_geocoder_none_an_address_is_verified_without_coordinates() {
    // Arrange: the default test settings have no key, so GEOCODER is none.
    let app = TestApp::spawn().await;
    assert_eq!(app.settings.geocoder.provider, GeocoderProvider::None);
    let (_, token) = app.signed_up("alice").await;
    let (id, job) = add_address(&app, &token, address_body("1 Main St")).await;

    // Act
    let outcomes = app.run_geocode_jobs().await;

    // Assert
    assert!(
        matches!(&outcomes[..], [ProcessOutcome::Recorded { status, .. }] if status.as_str() == "verified"),
        "{outcomes:?}"
    );
    let address = get_address(&app, &token, &id).await;
    assert_eq!(address.body["status"], "verified");
    assert!(address.body["latitude"].is_null());
    assert!(address.body["formatted_address"].is_null());
    let job = get_job(&app, &token, &job).await;
    assert_eq!(job.body["status"], "succeeded");
    assert_eq!(job.body["result"]["status"], "verified");
}

#[tokio::test]
async fn only_an_address_in_needs_review_can_be_confirmed() {
    // Arrange
    let app = TestApp::spawn().await;
    let (_, token) = app.signed_up("alice").await;
    let (id, _) = add_address(&app, &token, address_body("1 Main St")).await;

    // Act + Assert: pending, then verified (GEOCODER=none) are both refused.
    let resp = confirm(&app, &token, &id).await;
    assert_error(&resp, StatusCode::CONFLICT, "address_not_reviewable");
    assert_eq!(resp.body["error"]["details"]["status"], "pending");
    app.run_geocode_jobs().await;
    let resp = confirm(&app, &token, &id).await;
    assert_error(&resp, StatusCode::CONFLICT, "address_not_reviewable");
    assert_eq!(resp.body["error"]["details"]["status"], "verified");
}
