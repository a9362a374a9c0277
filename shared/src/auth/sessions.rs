//! A short in-process cache of authenticated sessions, so that a request with a valid access
//! token does not read PostgreSQL every time.
//!
//! An entry maps (user, session) to the user row PostgreSQL returned for it, and is used only
//! while all of these hold:
//!
//! * it is younger than `AUTH_CACHE_TTL_MS` (counted from before the read that filled it);
//! * this process is subscribed to the revocation channel: every password change, account
//!   deletion, profile edit, logout and refresh-reuse revocation is announced there after it
//!   commits, and each process drops the matching entries on receipt (the process that made
//!   the change drops them before it answers). While the subscription is down (Redis
//!   restarting, a lost connection) nothing is served from the cache, and it starts empty once
//!   the subscription is back;
//! * no revocation arrived while the read that filled it was in flight (an epoch counter), so
//!   a read that raced a change cannot store what it saw before the change.
//!
//! So a revoked token stops working at once on the process that revoked it, as soon as the
//! announcement arrives everywhere else (milliseconds), and in any case no later than
//! `AUTH_CACHE_TTL_MS` after the change committed: an announcement lost while the subscription
//! still looked alive is the only way an entry outlives its revocation, and no entry outlives
//! its TTL. `AUTH_CACHE_TTL_MS=0` turns the cache off.

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use futures::StreamExt;
use redis::aio::ConnectionManager;
use uuid::Uuid;

use crate::db::users::UserRow;

/// What a revocation announcement names: the cached entries to drop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Revoked {
    /// Every session of this user: its row changed (password, deletion, profile).
    User(Uuid),
    /// One session (logout, refresh-token reuse).
    Session(Uuid),
}

impl Revoked {
    fn encode(self) -> String {
        match self {
            Self::User(id) => format!("user:{id}"),
            Self::Session(id) => format!("session:{id}"),
        }
    }

    fn decode(message: &str) -> Option<Self> {
        let (kind, id) = message.split_once(':')?;
        let id = id.parse().ok()?;
        match kind {
            "user" => Some(Self::User(id)),
            "session" => Some(Self::Session(id)),
            _ => None,
        }
    }
}

/// The revocation channel of deployment `prefix`.
pub fn channel(prefix: &str) -> String {
    format!("{prefix}:auth:revoked")
}

struct Entry {
    user: UserRow,
    expires: Instant,
}

struct Inner {
    entries: Mutex<HashMap<(Uuid, Uuid), Entry>>,
    ttl: Duration,
    max_entries: usize,
    /// The subscription is live: entries may be served.
    live: AtomicBool,
    /// Bumped on every revocation received or made here.
    epoch: AtomicU64,
}

/// See the module documentation. Cheap to clone.
#[derive(Clone)]
pub struct SessionCache {
    inner: Arc<Inner>,
    /// Where revocations are announced; `None` for a disabled cache.
    announce: Option<(ConnectionManager, String)>,
}

/// Taken before a read that may fill the cache: when it was taken, and the epoch then.
#[derive(Debug, Clone, Copy)]
pub struct ReadStart {
    at: Instant,
    epoch: u64,
}

impl SessionCache {
    /// A cache that holds nothing (and announces nothing).
    pub fn disabled() -> Self {
        Self {
            inner: Arc::new(Inner::new(Duration::ZERO, 0, false)),
            announce: None,
        }
    }

    /// A cache of at most `max_entries` sessions, each for at most `ttl`, invalidated through
    /// the revocation channel of `prefix`: subscribes through `client` (its TLS settings apply)
    /// and announces through `redis`. Must run inside the Tokio runtime. A zero `ttl` or
    /// `max_entries` gives a cache that holds nothing but still announces, so that other
    /// processes with a cache hear of this one's revocations.
    pub fn start(
        client: redis::Client,
        redis: ConnectionManager,
        prefix: &str,
        ttl: Duration,
        max_entries: usize,
    ) -> Self {
        let channel = channel(prefix);
        let cache = Self {
            inner: Arc::new(Inner::new(ttl, max_entries, false)),
            announce: Some((redis, channel.clone())),
        };
        if ttl.is_zero() || max_entries == 0 {
            return cache;
        }
        let inner = Arc::downgrade(&cache.inner);
        tokio::spawn(async move {
            loop {
                let result = subscribe(&client, &channel, &inner).await;
                let Some(live) = inner.upgrade() else { return };
                live.go_dark();
                if let Err(e) = result {
                    tracing::warn!(error.message = %e, "session revocation subscription lost; reconnecting");
                }
                drop(live);
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        });
        cache
    }

    /// Whether entries are being served (the subscription is live).
    pub fn is_live(&self) -> bool {
        self.inner.live.load(Ordering::Acquire)
    }

    /// The cached row of `user_id`'s session `session_id`, if fresh.
    pub fn get(&self, user_id: Uuid, session_id: Uuid) -> Option<UserRow> {
        if !self.is_live() {
            return None;
        }
        let entries = self.inner.entries.lock().ok()?;
        let entry = entries.get(&(user_id, session_id))?;
        (entry.expires > Instant::now()).then(|| entry.user.clone())
    }

    /// Marks the start of a read whose result may be [`put`](Self::put).
    pub fn read_start(&self) -> ReadStart {
        ReadStart {
            at: Instant::now(),
            epoch: self.inner.epoch.load(Ordering::Acquire),
        }
    }

    /// Keeps `user` for `session_id`, read since `start`, unless a revocation came in since.
    pub fn put(&self, start: ReadStart, session_id: Uuid, user: &UserRow) {
        let inner = &self.inner;
        if !self.is_live() {
            return;
        }
        let Ok(mut entries) = inner.entries.lock() else {
            return;
        };
        // Checked under the lock that revocations take too: none can slip in between.
        if inner.epoch.load(Ordering::Acquire) != start.epoch {
            return;
        }
        let now = Instant::now();
        if entries.len() >= inner.max_entries {
            entries.retain(|_, e| e.expires > now);
            if entries.len() >= inner.max_entries {
                return;
            }
        }
        entries.insert(
            (user.id, session_id),
            Entry {
                user: user.clone(),
                expires: start.at + inner.ttl,
            },
        );
    }

    /// Drops what `revoked` names here, then announces it to every other process. Call after
    /// the change committed. An announcement that cannot be sent is logged: other processes
    /// then stop the revoked tokens within their TTL.
    pub async fn revoke(&self, revoked: Revoked) {
        self.inner.forget(revoked);
        let Some((redis, channel)) = &self.announce else {
            return;
        };
        let sent = redis::cmd("PUBLISH")
            .arg(channel)
            .arg(revoked.encode())
            .query_async::<i64>(&mut redis.clone())
            .await;
        if let Err(e) = sent {
            tracing::warn!(
                error.message = %e,
                "could not announce a session revocation; other api processes may accept the old tokens until their cache entries expire"
            );
        }
    }
}

impl Inner {
    fn new(ttl: Duration, max_entries: usize, live: bool) -> Self {
        Self {
            entries: Mutex::new(HashMap::new()),
            ttl,
            max_entries,
            live: AtomicBool::new(live),
            epoch: AtomicU64::new(0),
        }
    }

    fn forget(&self, revoked: Revoked) {
        let Ok(mut entries) = self.entries.lock() else {
            return;
        };
        self.epoch.fetch_add(1, Ordering::AcqRel);
        match revoked {
            Revoked::User(id) => entries.retain(|(user, _), _| *user != id),
            Revoked::Session(id) => entries.retain(|(_, session), _| *session != id),
        }
    }

    /// Drops every entry (and whatever reads are in flight would have stored).
    fn clear(&self) {
        if let Ok(mut entries) = self.entries.lock() {
            self.epoch.fetch_add(1, Ordering::AcqRel);
            entries.clear();
        }
    }

    /// The subscription is down: serve nothing, keep nothing.
    fn go_dark(&self) {
        self.live.store(false, Ordering::Release);
        self.clear();
    }
}

async fn subscribe(
    client: &redis::Client,
    channel: &str,
    inner: &std::sync::Weak<Inner>,
) -> redis::RedisResult<()> {
    let mut pubsub = client.get_async_pubsub().await?;
    pubsub.subscribe(channel).await?;
    match inner.upgrade() {
        Some(inner) => inner.live.store(true, Ordering::Release),
        None => return Ok(()),
    }
    let mut messages = pubsub.on_message();
    while let Some(msg) = messages.next().await {
        let Some(inner) = inner.upgrade() else {
            return Ok(());
        };
        let Ok(payload) = msg.get_payload::<String>() else {
            continue;
        };
        match Revoked::decode(&payload) {
            Some(revoked) => inner.forget(revoked),
            // Not ours to read: drop everything rather than guess.
            None => inner.clear(),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A cache that serves, as if subscribed.
    fn live(ttl: Duration, max_entries: usize) -> SessionCache {
        SessionCache {
            inner: Arc::new(Inner::new(ttl, max_entries, true)),
            announce: None,
        }
    }

    fn user() -> UserRow {
        let now = chrono::Utc::now();
        UserRow {
            id: Uuid::now_v7(),
            username: "alice".into(),
            email: "alice@example.com".into(),
            password_hash: "x".into(),
            display_name: String::new(),
            bio: String::new(),
            token_version: 0,
            created_at: now,
            updated_at: now,
        }
    }

    #[tokio::test]
    async fn a_session_is_served_until_revoked_by_user_or_by_session() {
        let cache = live(Duration::from_secs(60), 10);
        let (alice, session, other_session) = (user(), Uuid::now_v7(), Uuid::now_v7());
        cache.put(cache.read_start(), session, &alice);
        cache.put(cache.read_start(), other_session, &alice);
        assert_eq!(cache.get(alice.id, session).map(|u| u.id), Some(alice.id));
        cache.revoke(Revoked::Session(session)).await;
        assert!(cache.get(alice.id, session).is_none());
        assert!(cache.get(alice.id, other_session).is_some());
        cache.revoke(Revoked::User(alice.id)).await;
        assert!(cache.get(alice.id, other_session).is_none());
    }

    #[tokio::test]
    async fn a_read_that_raced_a_revocation_is_not_kept() {
        let cache = live(Duration::from_secs(60), 10);
        let (alice, session) = (user(), Uuid::now_v7());
        let start = cache.read_start();
        // The password changes while the read is in flight; the read saw the old row.
        cache.revoke(Revoked::User(alice.id)).await;
        cache.put(start, session, &alice);
        assert!(cache.get(alice.id, session).is_none());
    }

    #[test]
    fn an_entry_expires_its_ttl_after_the_read_began() {
        let cache = live(Duration::from_millis(50), 10);
        let (alice, session) = (user(), Uuid::now_v7());
        let start = cache.read_start();
        std::thread::sleep(Duration::from_millis(60));
        cache.put(start, session, &alice);
        assert!(cache.get(alice.id, session).is_none());
    }

    #[test]
    fn nothing_is_served_or_kept_while_the_subscription_is_down() {
        let cache = live(Duration::from_secs(60), 10);
        let (alice, session) = (user(), Uuid::now_v7());
        cache.put(cache.read_start(), session, &alice);
        cache.inner.go_dark();
        assert!(cache.get(alice.id, session).is_none());
        cache.put(cache.read_start(), session, &alice);
        cache.inner.live.store(true, Ordering::Release);
        assert!(
            cache.get(alice.id, session).is_none(),
            "emptied when it went dark"
        );
        assert!(SessionCache::disabled().get(alice.id, session).is_none());
    }

    #[test]
    fn the_cache_holds_at_most_max_entries() {
        let cache = live(Duration::from_secs(60), 3);
        let users: Vec<UserRow> = (0..5).map(|_| user()).collect();
        let session = Uuid::now_v7();
        for u in &users {
            cache.put(cache.read_start(), session, u);
        }
        let held = users
            .iter()
            .filter(|u| cache.get(u.id, session).is_some())
            .count();
        assert_eq!(held, 3);
        assert_eq!(cache.inner.entries.lock().unwrap().len(), 3);
    }

    #[test]
    fn announcements_round_trip() {
        let id = Uuid::now_v7();
        for revoked in [Revoked::User(id), Revoked::Session(id)] {
            assert_eq!(Revoked::decode(&revoked.encode()), Some(revoked));
        }
        assert_eq!(Revoked::decode("user:not-a-uuid"), None);
        assert_eq!(Revoked::decode(&format!("group:{id}")), None);
        assert_eq!(Revoked::decode(""), None);
    }
}
