//! The periodic sweeps the scheduler triggers and the worker runs: rebuilding the stock gate,
//! re-pushing work Redis lost, purging soft-deleted accounts and listings, and pruning finished
//! jobs. Each is idempotent by construction (a tick may be delivered twice, or two runs may
//! overlap) and works in bounded batches, each committed on its own.

mod prune;
mod purge;
mod reconcile;
mod requeue;

use redis::aio::ConnectionManager;
use sqlx::PgPool;

pub use prune::{PruneReport, prune_jobs};
pub use purge::{PurgeReport, purge_inactive};
pub use reconcile::{ReconcileReport, reconcile_stock};
pub use requeue::{RequeueReport, requeue_stale};

use crate::{
    config::{SweepSettings, WorkerSettings},
    db::StoreError,
    gate::{GateError, StockGate},
    queue::JobQueue,
};

/// Rows or ids handled per statement: small enough to keep each statement short.
const BATCH: i64 = 500;

/// Batches per run at most, so one run ends even while rows keep arriving; the next tick
/// continues.
const MAX_BATCHES: usize = 40;

/// What the sweeps need.
#[derive(Clone)]
pub struct SweepDeps {
    /// Postgres.
    pub pool: PgPool,
    /// Redis (gate counters, queue data).
    pub redis: ConnectionManager,
    /// Deployment key prefix.
    pub prefix: String,
    /// Queue settings, so queue names and configs match the workers'.
    pub worker: WorkerSettings,
    /// How far back the sweeps look.
    pub settings: SweepSettings,
}

impl SweepDeps {
    fn gate(&self) -> StockGate {
        StockGate::new(self.redis.clone(), &self.prefix)
    }

    fn queue(&self) -> JobQueue {
        JobQueue::new(self.redis.clone(), &self.prefix, &self.worker)
    }
}

/// A sweep run that stopped early; the next tick tries again.
#[derive(Debug, thiserror::Error)]
pub enum SweepError {
    /// Postgres failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Redis failed.
    #[error(transparent)]
    Redis(#[from] redis::RedisError),
}

impl From<sqlx::Error> for SweepError {
    fn from(e: sqlx::Error) -> Self {
        SweepError::Store(e.into())
    }
}

impl From<GateError> for SweepError {
    fn from(e: GateError) -> Self {
        match e {
            GateError::Redis(e) => SweepError::Redis(e),
            GateError::Postgres(e) => e.into(),
        }
    }
}
