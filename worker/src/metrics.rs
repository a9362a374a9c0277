//! The worker's metrics listener (`METRICS_ADDR`): job metrics from [`crate::observe`], sweep
//! results, and the depth of every queue, read from Redis at each scrape.

use std::{net::SocketAddr, sync::Arc};

use anyhow::Context as _;
use redis::aio::ConnectionManager;
use shared::{jobs, metrics, queue};

use crate::context::JobContext;

/// Starts serving `/metrics` on `addr` for the life of the process; returns the bound address.
pub async fn serve(ctx: &JobContext, addr: SocketAddr) -> anyhow::Result<SocketAddr> {
    let redis = ctx.redis.clone();
    let prefix = ctx.settings.redis_prefix.clone();
    let worker = ctx.settings.worker.clone();
    let refresh: metrics::Refresh = Arc::new(move || {
        let (redis, prefix, worker) = (redis.clone(), prefix.clone(), worker.clone());
        Box::pin(async move {
            if let Err(e) = refresh_queue_depths(redis, &prefix, &worker).await {
                tracing::warn!(error.message = %e, "could not read queue depths");
            }
        })
    });
    let bound = metrics::serve(addr, metrics::WORKER_FAMILIES, Some(refresh))
        .await
        .with_context(|| format!("Failed to listen on METRICS_ADDR {addr}"))?;
    tracing::info!(metrics.addr = %bound, "metrics listening");
    Ok(bound)
}

/// Reads every queue's ready, scheduled and dead counts in one round trip.
async fn refresh_queue_depths(
    mut redis: ConnectionManager,
    prefix: &str,
    worker: &shared::config::WorkerSettings,
) -> redis::RedisResult<()> {
    let mut pipe = redis::pipe();
    let jobs = jobs::names();
    for job in &jobs {
        let config = queue::redis_config(prefix, job, worker);
        pipe.cmd("LLEN").arg(config.active_jobs_list());
        pipe.cmd("ZCARD").arg(config.scheduled_jobs_set());
        pipe.cmd("SCARD").arg(config.dead_jobs_set());
    }
    let counts: Vec<u64> = pipe.query_async(&mut redis).await?;
    for (job, counts) in jobs.iter().zip(counts.chunks(3)) {
        for (state, n) in ["ready", "scheduled", "dead"].into_iter().zip(counts) {
            metrics::QUEUE_DEPTH.set([*job, state], *n);
        }
    }
    Ok(())
}
