//! Login throttling kept in Redis, so every api replica sees the same counts.
//!
//! Failures are counted per account and per client IP in a fixed window. Once a counter
//! reaches its limit, further attempts are refused (429 with `Retry-After`) until the window
//! ends — before the password is even checked, so a locked account cannot be probed.

use redis::aio::ConnectionManager;

use crate::config::AuthSettings;

/// Redis-backed failure counters.
#[derive(Clone)]
pub struct LoginThrottle {
    redis: ConnectionManager,
    prefix: String,
    max_per_account: u32,
    max_per_ip: u32,
    window_secs: u64,
}

impl LoginThrottle {
    /// Counters under `{prefix}:login:*`.
    pub fn new(redis: ConnectionManager, prefix: &str, settings: &AuthSettings) -> Self {
        Self {
            redis,
            prefix: prefix.to_owned(),
            max_per_account: settings.login_max_failures_per_account,
            max_per_ip: settings.login_max_failures_per_ip,
            window_secs: settings.login_failure_window.as_secs(),
        }
    }

    fn keys(&self, account: &str, ip: Option<&str>) -> Vec<(String, u32)> {
        let mut keys = vec![(self.account_key(account), self.max_per_account)];
        if let Some(ip) = ip {
            keys.push((format!("{}:login:ip:{ip}", self.prefix), self.max_per_ip));
        }
        keys
    }

    fn account_key(&self, account: &str) -> String {
        format!("{}:login:account:{account}", self.prefix)
    }

    /// `Some(seconds)` to wait when the account or IP is over its limit. `account` is a stable key
    /// for the account (the caller resolves usernames and emails to it), not the name as typed.
    pub async fn retry_after(
        &self,
        account: &str,
        ip: Option<&str>,
    ) -> redis::RedisResult<Option<u64>> {
        let mut conn = self.redis.clone();
        let mut wait = None;
        for (key, max) in self.keys(account, ip) {
            let (count, ttl): (Option<u32>, i64) = redis::pipe()
                .get(&key)
                .ttl(&key)
                .query_async(&mut conn)
                .await?;
            if count.unwrap_or(0) >= max {
                let secs = if ttl > 0 {
                    ttl as u64
                } else {
                    self.window_secs
                };
                wait = Some(wait.map_or(secs, |w: u64| w.max(secs)));
            }
        }
        Ok(wait)
    }

    /// Counts a failed attempt. The window starts at the first failure.
    pub async fn record_failure(&self, account: &str, ip: Option<&str>) -> redis::RedisResult<()> {
        let mut conn = self.redis.clone();
        let mut pipe = redis::pipe();
        for (key, _) in self.keys(account, ip) {
            pipe.incr(&key, 1).ignore();
            pipe.cmd("EXPIRE")
                .arg(&key)
                .arg(self.window_secs)
                .arg("NX")
                .ignore();
        }
        pipe.query_async::<()>(&mut conn).await
    }

    /// Clears the account counter after a successful login (the IP counter keeps counting, so one
    /// valid account cannot be used to reset an IP that is guessing others).
    pub async fn record_success(&self, account: &str) -> redis::RedisResult<()> {
        let mut conn = self.redis.clone();
        redis::cmd("DEL")
            .arg(self.account_key(account))
            .query_async::<()>(&mut conn)
            .await
    }
}
