//! The geocoder's parts on their own: the Google client against a fake that answers like the
//! Geocoding API (`wiremock`), the Redis rate limiter and the Redis cache (real Redis, a private
//! key prefix per test).

use std::time::{Duration, Instant};

use redis::{AsyncCommands, aio::ConnectionManager};
use secrecy::SecretString;
use serde_json::{Value, json};
use shared::geocode::{
    AddressQuery, GeocodeAnswer, GeocodeError, Geocoded,
    cache::{GeocodeCache, MATCH_TTL, NO_MATCH_TTL},
    google::GoogleGeocoder,
    rate_limit::{Permit, RateLimiter},
};
use wiremock::{
    Mock, MockServer, ResponseTemplate,
    matchers::{method, query_param},
};

const API_KEY: &str = "AIzaSyUnitTestKey00000000000000000000000";

fn query() -> AddressQuery {
    AddressQuery {
        address: "1600 Amphitheatre Pkwy, Mountain View, CA 94043".into(),
        country: "US".into(),
    }
}

fn google(server: &MockServer) -> GoogleGeocoder {
    GoogleGeocoder::new(
        &server.uri(),
        SecretString::from(API_KEY),
        Duration::from_millis(300),
    )
    .expect("client builds")
}

async fn fake(body: Value, status: u16) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(status).set_body_json(body))
        .mount(&server)
        .await;
    server
}

fn match_body() -> Value {
    json!({
        "results": [{
            "address_components": [{ "long_name": "94043", "short_name": "94043", "types": ["postal_code"] }],
            "formatted_address": "1600 Amphitheatre Pkwy, Mountain View, CA 94043, USA",
            "geometry": { "location": { "lat": 37.4224764, "lng": -122.0842499 }, "location_type": "ROOFTOP" },
            "place_id": "ChIJ2eUgeAK6j4ARbn5u_wAGqWA",
            "partial_match": true,
            "types": ["street_address"]
        }],
        "status": "OK"
    })
}

async fn redis() -> (ConnectionManager, String) {
    let url =
        std::env::var("TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned());
    let client = shared::kv::redis_client(&url, None).expect("Redis URL");
    let conn = shared::kv::connect_redis(&client).await.expect("Redis");
    (conn, format!("test-{}", uuid::Uuid::new_v4().simple()))
}

#[tokio::test]
async fn a_google_match_is_read_with_every_field() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(query_param("address", query().address))
        .and(query_param("components", "country:US"))
        .and(query_param("key", API_KEY))
        .respond_with(ResponseTemplate::new(200).set_body_json(match_body()))
        .expect(1)
        .mount(&server)
        .await;

    let answer = google(&server).geocode(&query()).await.unwrap();

    let GeocodeAnswer::Match(g) = answer else {
        panic!("no match: {answer:?}")
    };
    assert_eq!(g.place_id, "ChIJ2eUgeAK6j4ARbn5u_wAGqWA");
    assert_eq!((g.latitude, g.longitude), (37.4224764, -122.0842499));
    assert_eq!(g.location_type.as_deref(), Some("ROOFTOP"));
    assert_eq!(g.components[0]["short_name"], "94043");
    assert!(g.partial_match);
}

#[tokio::test]
async fn each_google_status_maps_to_an_answer_or_a_retryable_or_permanent_error() {
    let cases = [
        ("ZERO_RESULTS", "no_match"),
        ("OVER_QUERY_LIMIT", "retryable"),
        ("UNKNOWN_ERROR", "retryable"),
        ("REQUEST_DENIED", "geocoder_request_denied"),
        ("INVALID_REQUEST", "geocoder_invalid_request"),
        ("OVER_DAILY_LIMIT", "geocoder_refused"),
    ];
    for (status, expected) in cases {
        let server = fake(json!({ "results": [], "status": status }), 200).await;
        let got = match google(&server).geocode(&query()).await {
            Ok(GeocodeAnswer::NoMatch) => "no_match".to_owned(),
            Ok(GeocodeAnswer::Match(_)) => "match".to_owned(),
            Err(GeocodeError::Retryable(_)) => "retryable".to_owned(),
            Err(GeocodeError::Permanent { code, .. }) => code,
        };
        assert_eq!(got, expected, "{status}");
    }
}

#[tokio::test]
async fn server_errors_and_throttling_are_retryable_other_http_errors_are_not() {
    for (status, retryable) in [(500, true), (503, true), (429, true), (403, false)] {
        let server = fake(json!({}), status).await;
        let err = google(&server).geocode(&query()).await.unwrap_err();
        assert_eq!(
            matches!(err, GeocodeError::Retryable(_)),
            retryable,
            "{status}: {err:?}"
        );
    }
}

#[tokio::test]
async fn a_timeout_is_retryable_and_its_message_carries_neither_url_nor_key() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(match_body())
                .set_delay(Duration::from_secs(2)),
        )
        .mount(&server)
        .await;

    let err = google(&server).geocode(&query()).await.unwrap_err();

    let GeocodeError::Retryable(message) = &err else {
        panic!("not retryable: {err:?}")
    };
    assert!(message.starts_with("timed out"), "{message}");
    assert!(
        !message.contains(API_KEY) && !message.contains("key="),
        "{message}"
    );
    assert!(!format!("{:?}", google(&server)).contains(API_KEY));
}

#[tokio::test]
async fn a_blank_key_or_a_bad_url_is_refused_when_the_client_is_built() {
    let blank = GoogleGeocoder::new(
        "https://example.test/",
        SecretString::from(" "),
        Duration::from_secs(1),
    );
    assert!(matches!(blank, Err(GeocodeError::Permanent { .. })));
    let bad = GoogleGeocoder::new(
        "ftp://x",
        SecretString::from(API_KEY),
        Duration::from_secs(1),
    );
    assert!(matches!(bad, Err(GeocodeError::Permanent { .. })));
}

#[tokio::test]
async fn two_limiters_on_one_prefix_share_one_budget_and_refuse_beyond_the_wait() {
    // Arrange: 10 per second = one slot every 100 ms, shared by two instances.
    let (conn_a, prefix) = redis().await;
    let (conn_b, _) = redis().await;
    let a = RateLimiter::new(conn_a, &prefix, 10);
    let b = RateLimiter::new(conn_b, &prefix, 10);

    // Act: 20 reservations alternating between the instances, none waiting more than 1 s,
    // each with the local time just before and after it.
    let mut reservations = Vec::new();
    let started = Instant::now();
    for i in 0..20 {
        let limiter = if i % 2 == 0 { &a } else { &b };
        let before = Instant::now();
        let permit = limiter.reserve(Duration::from_secs(1)).await.unwrap();
        reservations.push((before, Instant::now(), permit));
    }
    let took = started.elapsed();

    // Assert: slots 0, 100, ..., 1000 ms after the first are granted, in order across
    // instances, and the rest refused with the time until a slot within the wait frees up.
    // Slot times are compared in absolute time (reservation + wait), bounded by the local
    // clock around each call, so a slow machine cannot make the spacing look wrong.
    let granted: Vec<(Instant, Instant, Duration)> = reservations
        .iter()
        .filter_map(|(before, after, p)| match p {
            Permit::Granted(w) => Some((*before, *after, *w)),
            Permit::Refused(_) => None,
        })
        .collect();
    // 11 when the 20 calls are quick; a slow run reaches later slots within the 1 s wait.
    let reachable = 11 + usize::try_from(took.as_millis() / 100).unwrap_or(usize::MAX);
    assert!(
        granted.len() >= 11 && granted.len() <= reachable,
        "{} granted in {took:?}: {reservations:?}",
        granted.len()
    );
    let slot = Duration::from_millis(100);
    let tick = Duration::from_millis(1);
    for (i, pair) in granted.windows(2).enumerate() {
        let ((b0, a0, w0), (b1, a1, w1)) = (pair[0], pair[1]);
        let earliest = (b1 + w1).saturating_duration_since(a0 + w0);
        let latest = (a1 + w1).saturating_duration_since(b0 + w0);
        assert!(
            earliest <= slot + tick && latest + tick >= slot,
            "grant {i} → {}: between {earliest:?} and {latest:?} apart",
            i + 1
        );
    }
    // (Only a run slower than 900 ms for 20 calls grants them all.)
    for (_, _, permit) in &reservations {
        if let Permit::Refused(r) = permit {
            assert!(*r <= slot, "refused for {r:?}");
        }
    }
    let (mut conn, _) = redis().await;
    let ttl: i64 = conn.pttl(format!("{prefix}:geocode-rate")).await.unwrap();
    assert!(ttl > 0 && ttl <= 2_200, "the key expires once idle: {ttl}");
    let _: () = conn.del(format!("{prefix}:geocode-rate")).await.unwrap();
}

#[tokio::test]
async fn an_idle_limiter_grants_at_once_and_acquire_sleeps_until_the_slot() {
    let (conn, prefix) = redis().await;
    let limiter = RateLimiter::new(conn.clone(), &prefix, 5);
    let started = std::time::Instant::now();

    for _ in 0..3 {
        limiter
            .acquire(Duration::from_secs(5))
            .await
            .unwrap()
            .unwrap();
    }

    // Two 200 ms steps after the first, immediate grant.
    let elapsed = started.elapsed();
    assert!(elapsed >= Duration::from_millis(390), "{elapsed:?}");
    let _: () = conn
        .clone()
        .del(format!("{prefix}:geocode-rate"))
        .await
        .unwrap();
}

#[tokio::test]
async fn the_cache_keeps_definitive_answers_by_normalised_input_with_their_ttl() {
    // Arrange
    let (conn, prefix) = redis().await;
    let cache = GeocodeCache::new(conn.clone(), &prefix);
    let found = GeocodeAnswer::Match(Geocoded {
        formatted_address: "1600 Amphitheatre Pkwy, Mountain View, CA 94043, USA".into(),
        latitude: 37.4224764,
        longitude: -122.0842499,
        place_id: "ChIJ2eUgeAK6j4ARbn5u_wAGqWA".into(),
        location_type: Some("ROOFTOP".into()),
        components: json!([]),
        partial_match: false,
    });
    let other = AddressQuery {
        address: "1 Nowhere Lane, Springfield 00000".into(),
        country: "US".into(),
    };
    let shouting = AddressQuery {
        address: query().address.to_uppercase().replace(' ', "   "),
        country: "us".into(),
    };

    // Act
    assert_eq!(cache.get(&query()).await.unwrap(), None);
    cache.put(&query(), &found).await.unwrap();
    cache.put(&other, &GeocodeAnswer::NoMatch).await.unwrap();

    // Assert
    assert_eq!(cache.get(&shouting).await.unwrap(), Some(found));
    assert_eq!(
        cache.get(&other).await.unwrap(),
        Some(GeocodeAnswer::NoMatch)
    );
    let key = cache.key(&query());
    assert!(key.starts_with(&format!("{prefix}:geocode:")) && key.len() == prefix.len() + 9 + 64);
    let mut conn = conn.clone();
    let match_ttl: i64 = conn.ttl(&key).await.unwrap();
    let miss_ttl: i64 = conn.ttl(cache.key(&other)).await.unwrap();
    assert!(match_ttl > i64::try_from(NO_MATCH_TTL.as_secs()).unwrap());
    assert!(match_ttl <= i64::try_from(MATCH_TTL.as_secs()).unwrap());
    assert!(miss_ttl > 0 && miss_ttl <= i64::try_from(NO_MATCH_TTL.as_secs()).unwrap());
    let _: () = conn.del(&[key, cache.key(&other)]).await.unwrap();
}
