//! The worker process: consumes the job queues in Redis and runs their handlers.
//!
//! `main` only reads the settings and sets up telemetry; everything else lives here so that
//! tests can drive it. Jobs are registered in one place, [`jobs::register_all`].

pub mod context;
pub mod jobs;
pub mod lease;
pub mod metrics;
pub mod observe;
pub mod queues;
pub mod restart;
pub mod wake;

use std::{future::Future, sync::Arc};

use anyhow::Context as _;
use apalis::prelude::Monitor;
use futures::FutureExt as _;
use shared::{
    config::Settings,
    shutdown::{StopSignal, shutdown_signal},
};

pub use crate::{context::JobContext, queues::QueueSelection, restart::RestartPolicy};

/// Runs the worker until SIGTERM or SIGINT, then lets in-flight jobs finish within
/// `WORKER_SHUTDOWN_TIMEOUT_SECS` and returns.
///
/// Fails fast on unusable settings or unreachable Postgres/Redis, and fails later if a job
/// worker keeps failing (see [`restart`]).
pub async fn run(settings: Settings) -> anyhow::Result<()> {
    queues::validate(&settings.worker)?;
    shared::queue::validate_prefix(&settings.redis_prefix)?;
    let selection = QueueSelection::from_names(&settings.worker.queues)?;
    // Installed before connecting, so a SIGTERM during start-up is a clean stop, not a kill.
    let signal = shutdown_signal().context("Failed to install signal handlers")?;
    let ctx = JobContext::connect(settings).await?;
    if let Some(addr) = ctx.settings.metrics_addr {
        metrics::serve(&ctx, addr).await?;
    }
    let policy = Arc::new(RestartPolicy::default());
    let monitor = build_monitor(&ctx, &selection, &policy);
    let signal = run_until_stopped(monitor, signal, &policy).await?;
    tracing::info!(%signal, "worker stopped");
    Ok(())
}

/// The apalis monitor with every selected job worker registered, restarting failed workers
/// under `policy` and giving in-flight jobs `WORKER_SHUTDOWN_TIMEOUT_SECS` on shutdown.
pub fn build_monitor(
    ctx: &JobContext,
    selection: &QueueSelection,
    policy: &Arc<RestartPolicy>,
) -> Monitor {
    let policy = Arc::clone(policy);
    let monitor = Monitor::new()
        .shutdown_timeout(ctx.settings.worker.shutdown_timeout)
        .should_restart(move |worker, error| policy.should_restart(worker, error));
    jobs::register_all(monitor, ctx, selection)
}

/// Why the monitor was asked to stop.
#[derive(Debug, Clone)]
enum Stop {
    Signal(StopSignal),
    GaveUp(String),
}

/// Runs `monitor` until `signal` fires (returning which one) or `policy` gives up on a worker.
///
/// A monitor with a shutdown timeout returns from `run_with_signal` as soon as it has no
/// running worker, without waiting for the signal (apalis-core 1.0.0 `Monitor::run_with_signal`
/// selects between "all workers finished" and "signal, then timeout"; with zero workers the
/// first is ready at once). So the stop future is shared and awaited again afterwards: the
/// process keeps running until it is told to stop, whether or not any job is registered.
pub async fn run_until_stopped(
    monitor: Monitor,
    signal: impl Future<Output = StopSignal> + Send,
    policy: &RestartPolicy,
) -> anyhow::Result<StopSignal> {
    let workers = monitor.context().workers().len();
    let stop = stop_requested(signal, policy).shared();
    tracing::info!(workers, "worker running");
    let outcome = monitor.run_with_signal(stop.clone().map(|_| Ok(()))).await;
    let stop = stop.await;
    outcome.context("Worker monitor failed")?;
    match stop {
        Stop::Signal(signal) => Ok(signal),
        Stop::GaveUp(reason) => Err(anyhow::anyhow!(reason)),
    }
}

async fn stop_requested(signal: impl Future<Output = StopSignal>, policy: &RestartPolicy) -> Stop {
    tokio::select! {
        signal = signal => {
            tracing::info!(%signal, "shutdown signal received, finishing in-flight jobs");
            Stop::Signal(signal)
        }
        reason = policy.given_up() => Stop::GaveUp(reason),
    }
}
