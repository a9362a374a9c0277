//! One geocoder request budget for the whole worker fleet, kept in Redis.
//!
//! The algorithm is GCRA (the "virtual scheduling" form of a token bucket) with no burst: a
//! single Redis key holds the time at which the next request may be sent, and every grant moves
//! it on by `1 / max_qps`. Requests are therefore spaced at least that far apart across every
//! replica, so no one-second window — aligned or sliding — ever holds more than `max_qps` of
//! them (a fixed per-second counter allows twice that around a window boundary).
//!
//! A caller reserves a slot and then sleeps until it; reserving is one Lua call, so waiting
//! costs Redis nothing. Slots further away than the caller's `max_wait` are not reserved at
//! all: the caller is told when to come back instead (its job is re-queued, not failed). Time
//! comes from the Redis server (`TIME`), so replicas with skewed clocks share one timeline.

use std::time::Duration;

use redis::{Script, aio::ConnectionManager};

/// Reserve the next slot if it is at most ARGV[2] µs away. Returns `{1, wait_us}` when granted
/// (send after `wait_us`), `{0, retry_in_us}` when refused. ARGV[1] = interval in µs. The
/// timestamp is written with `%.0f`: Lua's default number format keeps only 14 digits, which
/// would round a microsecond timestamp.
const RESERVE: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local max_wait = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1])) or now
if tat < now then tat = now end
local wait = tat - now
if wait > max_wait then return {0, wait - max_wait} end
local next_tat = tat + interval
local ttl_ms = math.ceil((next_tat - now) / 1000) + 1000
redis.call('SET', KEYS[1], string.format('%.0f', next_tat), 'PX', ttl_ms)
return {1, wait}
";

/// The limiter's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permit {
    /// A slot is reserved; send after waiting this long.
    Granted(Duration),
    /// No slot within the allowed wait; try again after this long.
    Refused(Duration),
}

/// A fleet-wide requests-per-second limit under `{prefix}:geocode-rate`.
#[derive(Clone)]
pub struct RateLimiter {
    redis: ConnectionManager,
    key: String,
    interval: Duration,
}

impl RateLimiter {
    /// At most `max_qps` requests per second (at least 1) for every limiter sharing `prefix`.
    pub fn new(redis: ConnectionManager, prefix: &str, max_qps: u32) -> Self {
        Self {
            redis,
            key: format!("{prefix}:geocode-rate"),
            interval: Duration::from_secs(1) / max_qps.max(1),
        }
    }

    /// Reserves a slot at most `max_wait` away, without waiting for it.
    pub async fn reserve(&self, max_wait: Duration) -> redis::RedisResult<Permit> {
        let (granted, micros): (i64, i64) = Script::new(RESERVE)
            .key(&self.key)
            .arg(micros(self.interval))
            .arg(micros(max_wait))
            .invoke_async(&mut self.redis.clone())
            .await?;
        let delay = Duration::from_micros(u64::try_from(micros).unwrap_or(0));
        Ok(if granted == 1 {
            Permit::Granted(delay)
        } else {
            Permit::Refused(delay)
        })
    }

    /// Reserves a slot at most `max_wait` away and sleeps until it. `Err(retry_in)` when there
    /// is none; the caller should come back after `retry_in`.
    pub async fn acquire(&self, max_wait: Duration) -> redis::RedisResult<Result<(), Duration>> {
        match self.reserve(max_wait).await? {
            Permit::Granted(wait) => {
                if !wait.is_zero() {
                    tokio::time::sleep(wait).await;
                }
                Ok(Ok(()))
            }
            Permit::Refused(retry_in) => Ok(Err(retry_in)),
        }
    }
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}
