//! The scheduler's metrics listener (`METRICS_ADDR`): leadership and ticks, and, on the leader
//! only, the queue backlog read from PostgreSQL at each scrape.
//!
//! The backlog is PostgreSQL's view (`jobs` rows still `queued`, webhook events not processed),
//! not Redis': it stays visible when every worker is down or a push was lost, which is when it
//! matters. One replica exports it, so a query over all replicas (`sum`, `max`) sees it once;
//! followers clear theirs.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use anyhow::Context as _;
use shared::{
    db::{StoreError, backlog},
    jobs::{self, Job as _, PaymentEvent},
    leader::LeaderLock,
    metrics,
};
use sqlx::PgPool;

use crate::SchedulerContext;

/// How long the backlog query may take; shorter than the listener's whole refresh, so a stalled
/// database leaves the series out instead of serving the previous values.
const BACKLOG_TIMEOUT: Duration = Duration::from_millis(1500);

/// Starts serving `/metrics` on `addr` for the life of the process; returns the bound address.
pub async fn serve(ctx: &SchedulerContext, addr: SocketAddr) -> anyhow::Result<SocketAddr> {
    let (pool, leader) = (ctx.pool.clone(), ctx.leader.clone());
    let refresh: metrics::Refresh = Arc::new(move || {
        let (pool, leader) = (pool.clone(), leader.clone());
        Box::pin(async move { refresh_backlog(&pool, &leader).await })
    });
    let bound = metrics::serve(addr, metrics::SCHEDULER_FAMILIES, Some(refresh))
        .await
        .with_context(|| format!("Failed to listen on METRICS_ADDR {addr}"))?;
    tracing::info!(metrics.addr = %bound, "metrics listening");
    Ok(bound)
}

/// On the leader, reads the backlog into its gauges; elsewhere, or when PostgreSQL does not
/// answer (logged), leaves them without series. A scrape never fails because of it.
async fn refresh_backlog(pool: &PgPool, leader: &LeaderLock) {
    if !leader.is_leader() {
        clear();
        return;
    }
    match tokio::time::timeout(BACKLOG_TIMEOUT, read_backlog(pool)).await {
        Ok(Ok(waiting)) => publish(&waiting),
        Ok(Err(e)) => {
            tracing::warn!(error.message = %e, "could not read the queue backlog");
            clear();
        }
        Err(_) => {
            tracing::warn!(
                timeout_ms = BACKLOG_TIMEOUT.as_millis(),
                "could not read the queue backlog in time"
            );
            clear();
        }
    }
}

async fn read_backlog(pool: &PgPool) -> Result<Vec<backlog::Waiting>, StoreError> {
    let mut conn = pool.acquire().await?;
    backlog::waiting(&mut conn, PaymentEvent::NAME).await
}

/// Sets a series for every queue of work PostgreSQL tracks, 0 where nothing waits, so an empty
/// queue reads 0 rather than nothing. A kind the registry does not know (a row left by an
/// older release) is not exported: the series stay a fixed set.
fn publish(waiting: &[backlog::Waiting]) {
    for queue in jobs::row_jobs().into_iter().chain([PaymentEvent::NAME]) {
        let found = waiting.iter().find(|w| w.queue == queue);
        metrics::JOB_QUEUE_BACKLOG.set([queue], found.map_or(0, |w| w.items));
        metrics::JOB_QUEUE_OLDEST_AGE.set([queue], found.map_or(0.0, |w| w.oldest_age_seconds));
    }
}

fn clear() {
    metrics::JOB_QUEUE_BACKLOG.clear();
    metrics::JOB_QUEUE_OLDEST_AGE.clear();
}
