//! The Redis stock gate: a fast admission check in front of checkout.
//!
//! One counter per listing holds the units the gate may still admit. A checkout asks for all of
//! its lines at once in one Lua script: either every counter is decremented or none is. Losers
//! are answered at once, without touching Postgres, so a rush on a hot item costs the database
//! nothing. The gate is only a filter: Postgres (row locks and the `reserved <= quantity` CHECK)
//! stays the authority, so a stale or wrong counter can refuse too much or admit too much, but
//! never oversell.
//!
//! A missing counter is loaded from Postgres, never assumed zero or infinite:
//! `quantity - reserved - units admitted by checkout jobs not yet processed`.

use std::{collections::HashMap, sync::LazyLock};

use redis::{Script, aio::ConnectionManager};
use sqlx::{PgConnection, PgExecutor};
use uuid::Uuid;

/// Reserve all lines or none, one request per ticket at a time. `KEYS[1]` is the ticket and
/// `ARGV[1]` its lifetime in milliseconds; `KEYS[i + 1]` and `ARGV[i + 1]` are line `i`'s counter
/// and units. Returns `{3}` when the ticket is taken (another request holding it is being
/// admitted: nothing is taken), `{0, i...}` when counters `i` are missing, `{2, i...}` when
/// lines `i` are short, `{4, i...}` when they are short and the ticket was just released by a
/// request that was recorded (the units may be that sibling's), `{1}` when every counter was
/// decremented (and the ticket is taken).
const RESERVE: &str = r"
local ticket = redis.call('GET', KEYS[1])
if ticket == 'held' then return {3} end
local missing = {}
for i = 2, #KEYS do
  if redis.call('EXISTS', KEYS[i]) == 0 then missing[#missing + 1] = i - 1 end
end
if #missing > 0 then return {0, unpack(missing)} end
local short = {}
for i = 2, #KEYS do
  if tonumber(redis.call('GET', KEYS[i])) < tonumber(ARGV[i]) then short[#short + 1] = i - 1 end
end
if #short > 0 then
  if ticket then return {4, unpack(short)} end
  return {2, unpack(short)}
end
for i = 2, #KEYS do redis.call('DECRBY', KEYS[i], ARGV[i]) end
redis.call('SET', KEYS[1], 'held', 'PX', ARGV[1])
return {1}
";

/// Give units back, but only to counters that exist: a released unit must not create a counter
/// holding just that unit (a missing counter is reloaded from Postgres instead).
const RELEASE: &str = r"
for i, key in ipairs(KEYS) do
  if redis.call('EXISTS', key) == 1 then redis.call('INCRBY', key, ARGV[i]) end
end
return 1
";

/// How long a ticket holds off the other requests that share it (a buyer's other checkouts):
/// far longer than admitting takes (one insert after the gate), and short enough that an
/// admission that died mid-way does not block the buyer's retries for long.
pub const TICKET_TTL: std::time::Duration = std::time::Duration::from_secs(5);

// Compiled (hashed) once: `Script::new` digests its source.
static RESERVE_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(RESERVE));
static RELEASE_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(RELEASE));

/// The gate's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admission {
    /// Every line was taken from the counters.
    Admitted,
    /// These listings lack the units asked for; nothing was taken.
    OutOfStock(Vec<Uuid>),
    /// Another request with the same ticket holds units and is being admitted; nothing was taken.
    InFlight,
    /// Short, right after another request with the same ticket was recorded: its job may hold
    /// the units, so the caller looks at what it recorded before answering.
    OutOfStockAfterSibling(Vec<Uuid>),
}

/// Errors talking to Redis or loading counters from Postgres.
#[derive(Debug, thiserror::Error)]
pub enum GateError {
    /// Redis failed.
    #[error(transparent)]
    Redis(#[from] redis::RedisError),
    /// Postgres failed while loading a counter.
    #[error(transparent)]
    Postgres(#[from] sqlx::Error),
}

/// Stock counters under `{prefix}:gate:{listing_id}`.
#[derive(Clone)]
pub struct StockGate {
    redis: ConnectionManager,
    prefix: String,
}

impl StockGate {
    /// A gate in the deployment namespace `prefix`.
    pub fn new(redis: ConnectionManager, prefix: &str) -> Self {
        Self {
            redis,
            prefix: prefix.to_owned(),
        }
    }

    /// The Redis key of a listing's counter.
    pub fn key(&self, listing_id: Uuid) -> String {
        format!("{}:gate:{listing_id}", self.prefix)
    }

    /// What every counter key starts with (reconciliation scans for it).
    pub fn key_prefix(&self) -> String {
        format!("{}:gate:", self.prefix)
    }

    /// Takes `lines` (listing, units) from the counters, all or nothing, under `ticket` (a
    /// caller-chosen name, e.g. the buyer's): until the ticket is freed
    /// ([`StockGate::free_ticket`], [`StockGate::cancel`]) or [`TICKET_TTL`] passes, another
    /// request with the same ticket gets [`Admission::InFlight`] and takes nothing, so a
    /// request racing another one of the same buyer (a retry, a second tab) can neither take
    /// the units twice nor be refused for the units the other one holds. Missing
    /// counters are loaded from Postgres through `conn` (the caller's connection, so that a burst
    /// of callers never waits on the pool for a second one).
    #[tracing::instrument(skip_all)]
    pub async fn reserve(
        &self,
        conn: &mut PgConnection,
        ticket: &str,
        lines: &[(Uuid, i32)],
    ) -> Result<Admission, GateError> {
        let script = &*RESERVE_SCRIPT;
        let ticket_ttl_ms = u64::try_from(TICKET_TTL.as_millis()).unwrap_or(u64::MAX);
        // Loading missing counters can race with other loaders; two rounds always suffice
        // because loaded counters are only created, never deleted, by this code.
        for _ in 0..3 {
            let mut invocation = script.prepare_invoke();
            invocation.key(self.ticket_key(ticket)).arg(ticket_ttl_ms);
            for (id, units) in lines {
                invocation.key(self.key(*id)).arg(*units);
            }
            let reply: Vec<i64> = invocation.invoke_async(&mut self.redis.clone()).await?;
            let indices = reply
                .iter()
                .skip(1)
                .filter_map(|i| usize::try_from(*i - 1).ok());
            match reply.first() {
                Some(1) => return Ok(Admission::Admitted),
                Some(2) => {
                    return Ok(Admission::OutOfStock(
                        indices.filter_map(|i| lines.get(i).map(|l| l.0)).collect(),
                    ));
                }
                Some(3) => return Ok(Admission::InFlight),
                Some(4) => {
                    return Ok(Admission::OutOfStockAfterSibling(
                        indices.filter_map(|i| lines.get(i).map(|l| l.0)).collect(),
                    ));
                }
                _ => {
                    let missing: Vec<Uuid> =
                        indices.filter_map(|i| lines.get(i).map(|l| l.0)).collect();
                    self.load(&mut *conn, &missing).await?;
                }
            }
        }
        Err(GateError::Redis(redis::RedisError::from((
            redis::ErrorKind::Client,
            "stock gate counters kept disappearing while loading",
        ))))
    }

    /// Gives back the units `ticket` took, which were not recorded after all, and frees the
    /// ticket for a retry.
    pub async fn cancel(&self, ticket: &str, lines: &[(Uuid, i32)]) -> Result<(), GateError> {
        self.release(lines).await?;
        self.drop_ticket(ticket).await
    }

    /// Frees `ticket` once its request was recorded (its units are held by the job now). For
    /// the ticket's lifetime a short answer to another request with it says so
    /// ([`Admission::OutOfStockAfterSibling`]): that request may have read the buyer's state
    /// before the job existed.
    pub async fn free_ticket(&self, ticket: &str) -> Result<(), GateError> {
        let ttl_ms = u64::try_from(TICKET_TTL.as_millis()).unwrap_or(u64::MAX);
        redis::cmd("SET")
            .arg(self.ticket_key(ticket))
            .arg("recorded")
            .arg("PX")
            .arg(ttl_ms)
            .query_async::<()>(&mut self.redis.clone())
            .await?;
        Ok(())
    }

    /// Deletes `ticket` (its request recorded nothing).
    async fn drop_ticket(&self, ticket: &str) -> Result<(), GateError> {
        redis::cmd("DEL")
            .arg(self.ticket_key(ticket))
            .query_async::<()>(&mut self.redis.clone())
            .await?;
        Ok(())
    }

    fn ticket_key(&self, ticket: &str) -> String {
        format!("{}:gate-ticket:{ticket}", self.prefix)
    }

    /// Gives units back (a checkout failed or an order was cancelled or expired).
    #[tracing::instrument(skip_all)]
    pub async fn release(&self, lines: &[(Uuid, i32)]) -> Result<(), GateError> {
        if lines.is_empty() {
            return Ok(());
        }
        let script = &*RELEASE_SCRIPT;
        let mut invocation = script.prepare_invoke();
        for (id, units) in lines {
            invocation.key(self.key(*id)).arg(*units);
        }
        invocation
            .invoke_async::<i64>(&mut self.redis.clone())
            .await?;
        Ok(())
    }

    /// Drops a listing's counter after its stock changed outside checkout (a seller edited the
    /// quantity or reactivated it); the next checkout reloads it from Postgres.
    pub async fn forget(&self, listing_id: Uuid) -> Result<(), GateError> {
        redis::cmd("DEL")
            .arg(self.key(listing_id))
            .query_async::<()>(&mut self.redis.clone())
            .await?;
        Ok(())
    }

    /// The current counter of a listing, if loaded (tests and reconciliation).
    pub async fn counter(&self, listing_id: Uuid) -> Result<Option<i64>, GateError> {
        Ok(redis::cmd("GET")
            .arg(self.key(listing_id))
            .query_async(&mut self.redis.clone())
            .await?)
    }

    /// Sets counters from Postgres where they are missing (`SET NX`: a counter another process
    /// loaded in the meantime is newer than ours).
    async fn load(&self, conn: &mut PgConnection, listings: &[Uuid]) -> Result<(), GateError> {
        let available = available_in_postgres(conn, listings).await?;
        let mut pipe = redis::pipe();
        for id in listings {
            let units = available.get(id).copied().unwrap_or(0).max(0);
            pipe.cmd("SET")
                .arg(self.key(*id))
                .arg(units)
                .arg("NX")
                .ignore();
        }
        pipe.query_async::<()>(&mut self.redis.clone()).await?;
        Ok(())
    }

    /// Overwrites counters (reconciliation): returns each listing's previous counter.
    pub async fn set(&self, counters: &[(Uuid, i64)]) -> Result<Vec<Option<i64>>, GateError> {
        let mut pipe = redis::pipe();
        for (id, units) in counters {
            pipe.cmd("SET").arg(self.key(*id)).arg(*units).arg("GET");
        }
        Ok(pipe.query_async(&mut self.redis.clone()).await?)
    }
}

/// What the gate may admit per listing according to Postgres: active listings only, minus units
/// held by pending orders (`reserved`) and units admitted by checkouts still in the queue.
pub async fn available_in_postgres(
    db: impl PgExecutor<'_>,
    listings: &[Uuid],
) -> Result<HashMap<Uuid, i64>, sqlx::Error> {
    let rows = crate::db::listings::available_for_gate(db, listings).await?;
    Ok(rows.into_iter().collect())
}
