//! Abuse limits kept in Redis, so every api replica sees the same counts.
//!
//! **Logins.** An attempt is *counted before* the password is verified, in one Lua script that
//! checks every limit and takes a slot only when all allow it: N parallel guesses at one account
//! get at most the limit of verifications. A successful login gives its slot back. Three
//! counters, each in a fixed window (`LOGIN_FAILURE_WINDOW_SECS`):
//! * account + address (`LOGIN_MAX_FAILURES_PER_ACCOUNT_AND_IP`): guessing from one address
//!   stops that address for that account, and never locks the owner out from another address;
//! * address (`LOGIN_MAX_FAILURES_PER_IP`): one address guessing many accounts is stopped (it
//!   counts failures once they are known, so a crowd behind one NAT logging in together is not
//!   refused for being in flight at once);
//! * account (`LOGIN_MAX_FAILURES_PER_ACCOUNT`, higher): past it only addresses that have not
//!   failed for this account may try, so guessing spread over many addresses gets one guess per
//!   address, while the owner with the right password from a fresh address still gets in.
//!
//! **Other actions** (sign-up, refresh, password change) are counted per address in a fixed
//! window (`ADDRESS_LIMIT_WINDOW_SECS`). Every refusal carries how long to wait (`Retry-After`).
//! A limit of 0 switches it off.

use redis::{Script, aio::ConnectionManager};

use crate::config::AuthSettings;

/// Checks the three login counters and, when all allow it, counts the attempt against the
/// account's two (the address's counter takes failures only, after the check, so many people
/// logging in at once behind one NAT are not refused for being in flight together).
/// KEYS: pair, address, account. ARGV: their limits, the window. Returns 0, or the seconds to
/// wait.
const ADMIT_LOGIN: &str = r#"
local pair = tonumber(redis.call('GET', KEYS[1]) or '0')
local function wait(key)
  local ttl = redis.call('TTL', key)
  if ttl > 0 then return ttl end
  return tonumber(ARGV[4])
end
for i = 1, 3 do
  local limit = tonumber(ARGV[i])
  local count = tonumber(redis.call('GET', KEYS[i]) or '0')
  -- The account-wide limit spares addresses that have not failed for the account.
  if limit > 0 and count >= limit and (i ~= 3 or pair > 0) then
    return wait(KEYS[i])
  end
end
for _, i in ipairs({1, 3}) do
  redis.call('INCR', KEYS[i])
  redis.call('EXPIRE', KEYS[i], ARGV[4], 'NX')
end
return 0
"#;

/// Gives a successful login's attempt back. KEYS: pair, account. The account counter is only
/// decremented while it exists and is positive, so an expired one is never recreated.
const FORGIVE_LOGIN: &str = r#"
redis.call('DEL', KEYS[1])
if tonumber(redis.call('GET', KEYS[2]) or '0') > 0 then
  redis.call('DECR', KEYS[2])
end
return 0
"#;

/// Counts one action against an address's limit. KEYS: the counter. ARGV: limit, window.
/// Returns 0, or the seconds to wait.
const HIT: &str = r#"
local count = redis.call('INCR', KEYS[1])
redis.call('EXPIRE', KEYS[1], ARGV[2], 'NX')
if count > tonumber(ARGV[1]) then
  local ttl = redis.call('TTL', KEYS[1])
  if ttl > 0 then return ttl end
  return tonumber(ARGV[2])
end
return 0
"#;

/// An action limited per address (besides logging in).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitedAction {
    /// `POST /auth/register`.
    Register,
    /// `POST /auth/refresh`.
    Refresh,
    /// `POST /users/me/password`.
    PasswordChange,
}

impl LimitedAction {
    fn name(self) -> &'static str {
        match self {
            Self::Register => "register",
            Self::Refresh => "refresh",
            Self::PasswordChange => "password",
        }
    }
}

/// Redis-backed attempt counters.
#[derive(Clone)]
pub struct LoginThrottle {
    redis: ConnectionManager,
    prefix: String,
    settings: AuthSettings,
}

/// The address used when a request has none (an in-process client).
const UNKNOWN_ADDRESS: &str = "unknown";

impl LoginThrottle {
    /// Counters under `{prefix}:login:*` and `{prefix}:limit:*`.
    pub fn new(redis: ConnectionManager, prefix: &str, settings: &AuthSettings) -> Self {
        Self {
            redis,
            prefix: prefix.to_owned(),
            settings: settings.clone(),
        }
    }

    fn login_keys(&self, account: &str, ip: Option<&str>) -> [String; 3] {
        let ip = ip.unwrap_or(UNKNOWN_ADDRESS);
        let p = &self.prefix;
        [
            format!("{p}:login:pair:{account}:{ip}"),
            format!("{p}:login:ip:{ip}"),
            format!("{p}:login:account:{account}"),
        ]
    }

    /// Takes a login attempt for `account` (a stable key: the caller resolves usernames and
    /// emails to it) from `ip`: `Some(seconds)` to wait when a limit refuses it, `None` when it
    /// was counted and the password may be checked.
    pub async fn admit_login(
        &self,
        account: &str,
        ip: Option<&str>,
    ) -> redis::RedisResult<Option<u64>> {
        let s = &self.settings;
        let wait: u64 = Script::new(ADMIT_LOGIN)
            .key(&self.login_keys(account, ip)[..])
            .arg(s.login_max_failures_per_account_and_ip)
            .arg(s.login_max_failures_per_ip)
            .arg(s.login_max_failures_per_account)
            .arg(s.login_failure_window.as_secs().max(1))
            .invoke_async(&mut self.redis.clone())
            .await?;
        Ok((wait > 0).then_some(wait))
    }

    /// A login failed: the address's counter takes it (the account's took it already).
    pub async fn record_failure(&self, account: &str, ip: Option<&str>) -> redis::RedisResult<()> {
        let [_, address, _] = self.login_keys(account, ip);
        redis::pipe()
            .incr(&address, 1)
            .ignore()
            .cmd("EXPIRE")
            .arg(&address)
            .arg(self.settings.login_failure_window.as_secs().max(1))
            .arg("NX")
            .ignore()
            .query_async::<()>(&mut self.redis.clone())
            .await
    }

    /// A login succeeded: its attempt was not a failure, and the address's failures for this
    /// account are forgiven. The address counter keeps its failures, so one valid account
    /// cannot be used to reset an address that is guessing others.
    pub async fn record_success(&self, account: &str, ip: Option<&str>) -> redis::RedisResult<()> {
        let [pair, _, account] = self.login_keys(account, ip);
        Script::new(FORGIVE_LOGIN)
            .key(pair)
            .key(account)
            .invoke_async::<()>(&mut self.redis.clone())
            .await
    }

    /// Counts `action` from `ip`: `Some(seconds)` to wait when the address is over its limit.
    pub async fn hit(
        &self,
        action: LimitedAction,
        ip: Option<&str>,
    ) -> redis::RedisResult<Option<u64>> {
        let s = &self.settings;
        let limit = match action {
            LimitedAction::Register => s.register_max_per_ip,
            LimitedAction::Refresh => s.refresh_max_per_ip,
            LimitedAction::PasswordChange => s.password_change_max_per_ip,
        };
        if limit == 0 {
            return Ok(None);
        }
        let key = format!(
            "{}:limit:{}:{}",
            self.prefix,
            action.name(),
            ip.unwrap_or(UNKNOWN_ADDRESS)
        );
        let wait: u64 = Script::new(HIT)
            .key(key)
            .arg(limit)
            .arg(s.address_limit_window.as_secs().max(1))
            .invoke_async(&mut self.redis.clone())
            .await?;
        Ok((wait > 0).then_some(wait))
    }
}
