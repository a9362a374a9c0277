//! The scheduler's leader lock: of all scheduler replicas, only the holder emits ticks.
//!
//! A Redis key `{prefix}:scheduler:leader` holds a random token of the holder:
//! * acquire (`SET … PX ttl` when the key is free) and renew (`PEXPIRE` when it holds our own
//!   token) in one Lua script, run every 3/10 of the TTL;
//! * release on shutdown: a Lua compare-and-`DEL`, so a successor takes over at once.
//!
//! A holder that dies stops renewing; the key expires `ttl` after its last renewal and another
//! replica's next attempt (every 3/10 of the TTL) wins it, so takeover happens within 1.3 × TTL
//! (13 s with the default 10 s). A holder that cannot reach Redis counts itself leader only
//! until `ttl` after the last renewal it *sent* (measured before sending, on its own monotonic
//! clock), so it stops before the key can expire and another replica take over. Even if two
//! replicas did overlap, every tick is deduplicated in Redis by its period, and every job is
//! idempotent.
//!
//! Redis rather than a Postgres advisory lock: a session lock is only released when Postgres
//! notices the connection is gone, which for a frozen or partitioned holder takes as long as
//! TCP keepalive (hours by default), and it breaks behind a transaction-mode pooler. The TTL
//! bounds failover whatever way the holder failed, and the scheduler needs Redis anyway.

use std::{
    sync::{Arc, Mutex, PoisonError},
    time::{Duration, Instant},
};

use redis::{Script, aio::ConnectionManager};

use crate::metrics;

/// Take the lock if it is free, or extend it if it is already ours: `1` if we hold it now.
/// One script for both, so a holder whose renewal failed (a Redis blip) gets its own lock back
/// instead of waiting for it to expire like a stranger.
const ACQUIRE_OR_RENEW: &str = r"
local holder = redis.call('GET', KEYS[1])
if holder == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
if not holder then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
";

/// Delete only our own lock.
const RELEASE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
";

/// One replica's view of the lock.
#[derive(Clone)]
pub struct LeaderLock {
    inner: Arc<Inner>,
}

struct Inner {
    redis: ConnectionManager,
    key: String,
    token: String,
    ttl: Duration,
    /// While leader: until when the lock is surely still ours.
    valid_until: Mutex<Option<Instant>>,
}

impl LeaderLock {
    /// The lock of deployment `prefix`; `holder` names this replica in the lock's value (for
    /// operators: `GET {prefix}:scheduler:leader` shows who leads).
    pub fn new(redis: ConnectionManager, prefix: &str, holder: &str, ttl: Duration) -> Self {
        let random = uuid::Uuid::new_v4().simple().to_string();
        Self {
            inner: Arc::new(Inner {
                redis,
                key: format!("{prefix}:scheduler:leader"),
                token: format!("{holder}:{random}"),
                ttl,
                valid_until: Mutex::new(None),
            }),
        }
    }

    /// How often the lock is renewed (and, by a follower, tried).
    pub fn renew_interval(&self) -> Duration {
        self.inner.ttl * 3 / 10
    }

    /// Whether this replica holds the lock right now.
    pub fn is_leader(&self) -> bool {
        self.valid_until()
            .is_some_and(|until| Instant::now() < until)
    }

    /// This replica's token (the lock's value while it leads).
    pub fn token(&self) -> &str {
        &self.inner.token
    }

    fn valid_until(&self) -> Option<Instant> {
        *self
            .inner
            .valid_until
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn set_valid_until(&self, until: Option<Instant>) {
        *self
            .inner
            .valid_until
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = until;
    }

    /// One round: renew if leading, try to acquire otherwise. Returns whether it leads now.
    pub async fn step(&self) -> bool {
        let was_leader = self.is_leader();
        // Measured before the command is sent: the key expires `ttl` after Redis applies it,
        // which is later, so this side always gives up first.
        let sent_at = Instant::now();
        let held: redis::RedisResult<i64> = Script::new(ACQUIRE_OR_RENEW)
            .key(&self.inner.key)
            .arg(&self.inner.token)
            .arg(millis(self.inner.ttl))
            .invoke_async(&mut self.inner.redis.clone())
            .await;
        match held {
            Ok(1) => self.set_valid_until(Some(sent_at + self.inner.ttl)),
            Ok(_) => self.set_valid_until(None),
            // Leadership, if any, lapses on its own when `valid_until` passes.
            Err(e) => tracing::warn!(
                error.message = %e,
                leader = was_leader,
                "could not reach Redis for the scheduler leader lock"
            ),
        }
        let is_leader = self.is_leader();
        if is_leader != was_leader {
            if is_leader {
                tracing::info!(leader.token = %self.inner.token, "became scheduler leader");
            } else {
                tracing::warn!(leader.token = %self.inner.token, "lost scheduler leadership");
            }
        }
        metrics::LEADER.set([], i64::from(is_leader));
        is_leader
    }

    /// Gives the lock up (shutdown), so another replica takes over at its next attempt.
    pub async fn release(&self) {
        let was_leader = self.is_leader();
        self.set_valid_until(None);
        metrics::LEADER.set([], 0);
        if !was_leader {
            return;
        }
        let released: redis::RedisResult<i64> = Script::new(RELEASE)
            .key(&self.inner.key)
            .arg(&self.inner.token)
            .invoke_async(&mut self.inner.redis.clone())
            .await;
        match released {
            Ok(_) => tracing::info!("released scheduler leadership"),
            // It expires on its own within the TTL.
            Err(e) => tracing::warn!(error.message = %e, "could not release the leader lock"),
        }
    }

    /// Renews or acquires every [`Self::renew_interval`] until `stop` resolves, then releases.
    pub async fn run(&self, stop: impl Future<Output = ()>) {
        let mut every = tokio::time::interval(self.renew_interval());
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tokio::pin!(stop);
        loop {
            tokio::select! {
                () = &mut stop => break,
                _ = every.tick() => {
                    self.step().await;
                }
            }
        }
        self.release().await;
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}
