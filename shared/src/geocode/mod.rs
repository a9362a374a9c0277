//! Address validation by geocoding: the api stores a `pending` address with a job
//! ([`submit`]); the worker resolves it through the geocoder ([`process`]).
//!
//! The pieces around the provider call keep it cheap and within quota:
//! * [`cache::GeocodeCache`]: definitive answers (a match or no match) are kept in Redis under
//!   the hash of the normalised input, so the same address is never paid for twice;
//! * [`rate_limit::RateLimiter`]: one request-per-second budget shared by every worker replica
//!   through Redis, so adding workers cannot exceed the provider's quota;
//! * [`retry_delay`]: exponential backoff with jitter for transient provider failures, with the
//!   attempt cap kept in the `jobs` row.
//!
//! With `GEOCODER=none` no provider is called: addresses become `verified` without coordinates.

pub mod cache;
pub mod google;
mod process;
pub mod rate_limit;
mod record;
mod submit;

use std::time::Duration;

use rand::Rng;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use uuid::Uuid;

pub use process::{GeocodeDeps, ProcessError, ProcessOutcome, process};
pub use submit::{MAX_ADDRESSES_PER_USER, SubmitError, Submitted, submit};

use crate::{
    config::{GeocoderProvider, GeocoderSettings},
    db::addresses::AddressRow,
};

/// Attempts (provider calls) before a job gives up and the address ends `failed`. With
/// [`retry_delay`] the retries span roughly two to four minutes, enough to ride out a
/// per-second quota or a short provider outage; a longer outage is an operator's problem.
pub const MAX_ATTEMPTS: i32 = 8;

/// First retry delay before jitter; doubled per attempt.
const BACKOFF_BASE: Duration = Duration::from_secs(2);

/// Longest retry delay before jitter.
const BACKOFF_CAP: Duration = Duration::from_secs(300);

/// What the job row carries: only the address id (the address itself is read fresh).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub struct GeocodePayload {
    /// The address to geocode.
    pub address_id: Uuid,
}

impl GeocodePayload {
    /// The JSON stored in `jobs.payload`.
    pub fn to_json(&self) -> Value {
        serde_json::json!({ "address_id": self.address_id })
    }
}

/// The input sent to the geocoder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddressQuery {
    /// Free-form address: the lines, city, region and postal code, comma-separated.
    pub address: String,
    /// ISO 3166-1 alpha-2 code; restricts results to that country.
    pub country: String,
}

impl AddressQuery {
    /// The query for a stored address.
    pub fn from_row(row: &AddressRow) -> Self {
        let region_postal = match &row.region {
            Some(region) => format!("{region} {}", row.postal_code),
            None => row.postal_code.clone(),
        };
        let parts = [
            Some(row.line1.as_str()),
            row.line2.as_deref(),
            Some(row.city.as_str()),
            Some(region_postal.as_str()),
        ];
        let address = parts.into_iter().flatten().collect::<Vec<_>>().join(", ");
        Self {
            address,
            country: row.country.clone(),
        }
    }

    /// SHA-256 (hex) of the normalised input: case and runs of whitespace do not change what a
    /// geocoder answers, so they do not change the key either. Versioned, so a change to the
    /// query format cannot serve answers to a differently built query.
    pub fn fingerprint(&self) -> String {
        let normalise = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ");
        let input = format!(
            "v1\n{}\n{}",
            normalise(&self.address).to_lowercase(),
            normalise(&self.country).to_uppercase()
        );
        Sha256::digest(input.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }
}

/// A place the geocoder matched.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Geocoded {
    /// The normalised address.
    pub formatted_address: String,
    /// Latitude.
    pub latitude: f64,
    /// Longitude.
    pub longitude: f64,
    /// The provider's place id.
    pub place_id: String,
    /// Precision of the coordinates (Google: `ROOFTOP`, `RANGE_INTERPOLATED`,
    /// `GEOMETRIC_CENTER`, `APPROXIMATE`).
    pub location_type: Option<String>,
    /// Address components as the provider sent them.
    pub components: Value,
    /// The provider matched only part of the input: the buyer should review it.
    pub partial_match: bool,
}

/// A definitive geocoder answer: these are the answers worth caching.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum GeocodeAnswer {
    /// The best match.
    Match(Geocoded),
    /// No such place (Google: `ZERO_RESULTS`).
    NoMatch,
}

/// Why a geocoder call gave no definitive answer.
///
/// Messages never contain the API key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GeocodeError {
    /// Try again later: quota answers (`OVER_QUERY_LIMIT`), `UNKNOWN_ERROR`, HTTP 5xx/429,
    /// timeouts and connection failures.
    #[error("geocoder temporarily unavailable: {0}")]
    Retryable(String),
    /// Retrying cannot help (`REQUEST_DENIED`, `INVALID_REQUEST`, a bad configuration).
    #[error("geocoder refused the request: {message}")]
    Permanent {
        /// Stable snake_case code for the job error, e.g. `geocoder_request_denied`.
        code: String,
        /// What went wrong, for operators.
        message: String,
    },
}

/// The geocoder the worker uses.
#[derive(Debug, Clone)]
pub enum Geocoder {
    /// `GEOCODER=none`: no provider; addresses are verified as typed.
    None,
    /// The Google Geocoding API.
    Google(google::GoogleGeocoder),
}

impl Geocoder {
    /// Builds the geocoder the settings select and says at start-up which one it is.
    pub fn from_settings(settings: &GeocoderSettings) -> Result<Self, GeocodeError> {
        match (settings.provider, &settings.google_api_key) {
            (GeocoderProvider::Google, Some(key)) => {
                let client = google::GoogleGeocoder::new(
                    &settings.google_geocoding_url,
                    key.clone(),
                    settings.timeout,
                )?;
                tracing::info!(
                    max_qps = settings.max_qps,
                    timeout_ms = settings.timeout.as_millis() as u64,
                    "geocoder: Google Geocoding API"
                );
                Ok(Self::Google(client))
            }
            (GeocoderProvider::Google, None) => Err(GeocodeError::Permanent {
                code: "geocoder_misconfigured".into(),
                message: "GEOCODER=google needs GOOGLE_MAPS_API_KEY".into(),
            }),
            (GeocoderProvider::None, _) => {
                tracing::warn!(
                    "GEOCODER=none (no GOOGLE_MAPS_API_KEY): addresses are marked verified \
                     without geocoding and have no coordinates"
                );
                Ok(Self::None)
            }
        }
    }
}

/// How long to wait before attempt `attempts + 1`, after `attempts` failed ones: exponential
/// (2 s, 4 s, 8 s, ... capped at 5 min) with "equal jitter" — a random point in the upper half
/// of the step — so retries of jobs that failed together spread out instead of returning as a
/// herd, while every retry still waits at least half its step.
pub fn retry_delay(attempts: i32) -> Duration {
    let exponent = u32::try_from(attempts.saturating_sub(1))
        .unwrap_or(0)
        .min(16);
    let step = BACKOFF_BASE
        .saturating_mul(2u32.saturating_pow(exponent))
        .min(BACKOFF_CAP);
    let half = step / 2;
    half + half.mul_f64(rand::thread_rng().gen_range(0.0..=1.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(address: &str, country: &str) -> AddressQuery {
        AddressQuery {
            address: address.to_owned(),
            country: country.to_owned(),
        }
    }

    #[test]
    fn the_fingerprint_ignores_case_and_whitespace_only() {
        let a = query("1 Main St, Springfield, IL 62701", "US");
        let b = query("  1 MAIN  st,  springfield, il 62701 ", "us");
        let c = query("2 Main St, Springfield, IL 62701", "US");
        assert_eq!(a.fingerprint(), b.fingerprint());
        assert_ne!(a.fingerprint(), c.fingerprint());
        assert_ne!(a.fingerprint(), query(&a.address, "CA").fingerprint());
        assert_eq!(a.fingerprint().len(), 64);
    }

    #[test]
    fn retry_delays_grow_exponentially_with_jitter_up_to_the_cap() {
        for (attempts, step) in [(1, 2), (2, 4), (3, 8), (6, 64), (9, 300), (40, 300)] {
            let step = Duration::from_secs(step);
            for _ in 0..50 {
                let d = retry_delay(attempts);
                assert!(d >= step / 2 && d <= step, "attempt {attempts}: {d:?}");
            }
        }
        let spread: std::collections::HashSet<_> = (0..20).map(|_| retry_delay(3)).collect();
        assert!(spread.len() > 1, "no jitter");
    }
}
