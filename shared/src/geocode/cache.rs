//! Definitive geocoder answers, cached in Redis by the hash of the normalised input, so the
//! same address typed twice (by anyone) is paid for once.
//!
//! Only definitive answers are stored: a match (`OK`) for [`MATCH_TTL`], no match
//! (`ZERO_RESULTS`) for the shorter [`NO_MATCH_TTL`] because new streets appear in the
//! provider's data and a stale "no such place" would block a real buyer. Errors are never
//! cached. The cache is an optimisation only: callers treat a Redis failure as a miss.

use std::time::Duration;

use redis::{AsyncCommands, aio::ConnectionManager};

use super::{AddressQuery, GeocodeAnswer};

/// How long a match is reused.
pub const MATCH_TTL: Duration = Duration::from_secs(30 * 24 * 60 * 60);

/// How long a "no such place" answer is reused.
pub const NO_MATCH_TTL: Duration = Duration::from_secs(24 * 60 * 60);

/// Answers under `{prefix}:geocode:{sha256}`.
#[derive(Clone)]
pub struct GeocodeCache {
    redis: ConnectionManager,
    prefix: String,
}

impl GeocodeCache {
    /// A cache in the deployment namespace `prefix`.
    pub fn new(redis: ConnectionManager, prefix: &str) -> Self {
        Self {
            redis,
            prefix: prefix.to_owned(),
        }
    }

    /// The key of a query's answer.
    pub fn key(&self, query: &AddressQuery) -> String {
        format!("{}:geocode:{}", self.prefix, query.fingerprint())
    }

    /// The cached answer, if any. An entry that no longer parses (written by another version)
    /// counts as a miss.
    pub async fn get(&self, query: &AddressQuery) -> redis::RedisResult<Option<GeocodeAnswer>> {
        let raw: Option<String> = self.redis.clone().get(self.key(query)).await?;
        Ok(raw.and_then(|json| serde_json::from_str(&json).ok()))
    }

    /// Stores an answer with its TTL.
    pub async fn put(
        &self,
        query: &AddressQuery,
        answer: &GeocodeAnswer,
    ) -> redis::RedisResult<()> {
        let ttl = match answer {
            GeocodeAnswer::Match(_) => MATCH_TTL,
            GeocodeAnswer::NoMatch => NO_MATCH_TTL,
        };
        let json = serde_json::to_string(answer).map_err(|e| {
            redis::RedisError::from((
                redis::ErrorKind::Client,
                "unserialisable geocode answer",
                e.to_string(),
            ))
        })?;
        self.redis
            .clone()
            .set_ex(self.key(query), json, ttl.as_secs())
            .await
    }
}
