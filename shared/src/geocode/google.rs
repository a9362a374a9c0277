//! The Google Geocoding API client: one HTTP attempt per call, answers reduced to
//! [`GeocodeAnswer`] or a retryable/permanent [`GeocodeError`]. Retries, the rate limit and
//! caching are the caller's (see [`super::process`]).
//!
//! The API key travels as a query parameter, so it is part of every request URL: errors are
//! stripped of the URL (`reqwest::Error::without_url`) and any text that could echo it is
//! scrubbed before it reaches a log or a job row.

use std::{fmt, sync::Arc, time::Duration};

use reqwest::{StatusCode, Url};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::Value;

use super::{AddressQuery, GeocodeAnswer, GeocodeError, Geocoded};
use crate::payments::install_crypto_provider;

/// A configured Google Geocoding client; cheap to clone.
#[derive(Clone)]
pub struct GoogleGeocoder {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    url: Url,
    api_key: SecretString,
}

impl fmt::Debug for GoogleGeocoder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The key stays out of logs.
        f.debug_struct("GoogleGeocoder")
            .field("url", &self.inner.url.as_str())
            .finish_non_exhaustive()
    }
}

/// Google's response body (only the fields we use).
#[derive(Debug, Deserialize)]
struct ApiResponse {
    status: String,
    #[serde(default)]
    results: Vec<ApiResult>,
    error_message: Option<String>,
}

#[derive(Debug, Deserialize)]
struct ApiResult {
    formatted_address: String,
    geometry: Geometry,
    place_id: String,
    #[serde(default)]
    partial_match: bool,
    #[serde(default)]
    address_components: Value,
}

#[derive(Debug, Deserialize)]
struct Geometry {
    location: LatLng,
    location_type: Option<String>,
}

#[derive(Debug, Deserialize)]
struct LatLng {
    lat: f64,
    lng: f64,
}

impl GoogleGeocoder {
    /// A client for the endpoint `url` (Google's own, or a local fake in tests) with a
    /// per-request `timeout` covering connect, send and the whole response.
    pub fn new(url: &str, api_key: SecretString, timeout: Duration) -> Result<Self, GeocodeError> {
        let misconfigured = |message: String| GeocodeError::Permanent {
            code: "geocoder_misconfigured".into(),
            message,
        };
        if api_key.expose_secret().trim().is_empty() {
            return Err(misconfigured("GOOGLE_MAPS_API_KEY is empty".into()));
        }
        let url = Url::parse(url.trim())
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https"))
            .ok_or_else(|| {
                misconfigured(format!(
                    "GOOGLE_GEOCODING_URL must be an http(s) URL, got {url:?}"
                ))
            })?;
        // reqwest is built without a crypto provider of its own.
        install_crypto_provider();
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .build()
            .map_err(|e| misconfigured(format!("HTTP client: {}", e.without_url())))?;
        Ok(Self {
            inner: Arc::new(Inner { http, url, api_key }),
        })
    }

    /// Geocodes one address: a single HTTP request, no retries.
    pub async fn geocode(&self, query: &AddressQuery) -> Result<GeocodeAnswer, GeocodeError> {
        let response = self
            .inner
            .http
            .get(self.request_url(query))
            .send()
            .await
            .map_err(|e| self.transport_error(e))?;
        let status = response.status();
        if status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS {
            return Err(GeocodeError::Retryable(format!("HTTP {status}")));
        }
        match response.json::<ApiResponse>().await {
            Ok(body) => self.interpret(body),
            Err(e) if status.is_success() => Err(self.transport_error(e)),
            Err(_) => Err(GeocodeError::Permanent {
                code: "geocoder_http_error".into(),
                message: format!("Google Geocoding API answered HTTP {status}"),
            }),
        }
    }

    fn request_url(&self, query: &AddressQuery) -> Url {
        let mut url = self.inner.url.clone();
        url.query_pairs_mut()
            .append_pair("address", &query.address)
            .append_pair("components", &format!("country:{}", query.country))
            .append_pair("key", self.inner.api_key.expose_secret());
        url
    }

    /// A failed exchange (connect, timeout, unreadable body): retryable, and reported without
    /// the URL, which carries the key.
    fn transport_error(&self, e: reqwest::Error) -> GeocodeError {
        let kind = if e.is_timeout() {
            "timed out"
        } else if e.is_connect() {
            "connection failed"
        } else if e.is_decode() {
            "unreadable response"
        } else {
            "request failed"
        };
        let detail = self.scrub(&e.without_url().to_string());
        GeocodeError::Retryable(format!("{kind}: {detail}"))
    }

    fn interpret(&self, body: ApiResponse) -> Result<GeocodeAnswer, GeocodeError> {
        let detail = match body.error_message.as_deref() {
            Some(m) => format!("{}: {}", body.status, self.scrub(m)),
            None => body.status.clone(),
        };
        match body.status.as_str() {
            "OK" => Ok(body
                .results
                .into_iter()
                .next()
                .map_or(GeocodeAnswer::NoMatch, |best| {
                    GeocodeAnswer::Match(Geocoded {
                        formatted_address: best.formatted_address,
                        latitude: best.geometry.location.lat,
                        longitude: best.geometry.location.lng,
                        place_id: best.place_id,
                        location_type: best.geometry.location_type,
                        components: best.address_components,
                        partial_match: best.partial_match,
                    })
                })),
            "ZERO_RESULTS" => Ok(GeocodeAnswer::NoMatch),
            "OVER_QUERY_LIMIT" | "UNKNOWN_ERROR" => Err(GeocodeError::Retryable(detail)),
            "REQUEST_DENIED" => Err(GeocodeError::Permanent {
                code: "geocoder_request_denied".into(),
                message: format!(
                    "Google refused the request (check GOOGLE_MAPS_API_KEY, its API \
                     restrictions and billing): {detail}"
                ),
            }),
            "INVALID_REQUEST" => Err(GeocodeError::Permanent {
                code: "geocoder_invalid_request".into(),
                message: format!("Google rejected the query: {detail}"),
            }),
            // OVER_DAILY_LIMIT (key or billing problem) and anything undocumented: a human has
            // to look, and retrying would only repeat the answer.
            _ => Err(GeocodeError::Permanent {
                code: "geocoder_refused".into(),
                message: format!("Google Geocoding API answered {detail}"),
            }),
        }
    }

    /// Removes the key from provider or library text, should either ever echo it.
    fn scrub(&self, text: &str) -> String {
        let key = self.inner.api_key.expose_secret();
        if key.is_empty() {
            text.to_owned()
        } else {
            text.replace(key, "[redacted]")
        }
    }
}
