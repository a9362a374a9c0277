//! The scheduler process: turns schedules into jobs on the Redis queues.
//!
//! It only enqueues; the work runs in the worker, so retries, concurrency and logs are the same
//! for every job. `main` only reads the settings and sets up telemetry;
//! everything else lives here so that tests can drive it. Schedules are registered in one
//! place, [`schedules::register_all`].
//!
//! Every replica runs every schedule, but only the holder of the leader lock
//! ([`shared::leader`]) pushes the ticks; the others count them as `not_leader`. If the leader
//! dies, another replica takes the lock within 1.3 × `SCHEDULER_LEADER_TTL_SECS` (13 s by
//! default) and emits the next ticks.
//!
//! The leader also exports the queue backlog metrics (`job_queue_backlog`,
//! `job_queue_oldest_age_seconds`), read from PostgreSQL at each scrape ([`metrics`]): the one
//! use the scheduler has for the database.

pub mod metrics;
pub mod schedules;

use std::{future::Future, sync::Arc, time::Duration};

use anyhow::Context as _;
use apalis::prelude::{Monitor, WorkerContext, WorkerError};
use futures::FutureExt as _;
use shared::{
    config::Settings,
    leader::LeaderLock,
    services::Services,
    shutdown::{StopSignal, shutdown_signal},
};

/// How long a tick that is being handled may take after SIGTERM. Ticks only push jobs (one
/// Redis call each), so this is generous, yet short enough not to delay a deploy.
pub const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(10);

/// The most PostgreSQL connections a scheduler opens (fewer if `DATABASE_MAX_CONNECTIONS` is
/// lower): one answers a scrape; the second spares a scrape waiting behind a slow one.
pub const MAX_DATABASE_CONNECTIONS: u32 = 2;

/// What the scheduler runs with.
#[derive(Clone)]
pub struct SchedulerContext {
    /// Connections, clients and settings, as every process has them (the ticks go to
    /// `services.queue`).
    pub services: Services,
    /// This replica's view of the leader lock; ticks are only pushed while it leads.
    pub leader: LeaderLock,
    /// Every periodic job with its schedule (`None`: switched off).
    pub schedules: Arc<Vec<(&'static str, Option<cron::Schedule>)>>,
}

impl SchedulerContext {
    /// Reads the schedules (`SCHEDULE_<JOB>` from the environment) and connects to Redis, so
    /// that a bad schedule or a wrong URL stops start-up instead of every tick.
    pub async fn connect(mut settings: Settings) -> anyhow::Result<Self> {
        let schedules = schedules::from_lookup(|name| std::env::var(name).ok())?;
        // Ticks only push to Redis; PostgreSQL serves the leader's backlog metric alone, so the
        // pool is small and connects on the first scrape that needs it: a database outage
        // never stops the ticks.
        settings.database_max_connections = settings
            .database_max_connections
            .min(MAX_DATABASE_CONNECTIONS);
        let services = Services::connect_lazily(settings).await?;
        let holder = format!("{}-{}", shared::telemetry::host_name(), std::process::id());
        let leader = LeaderLock::new(
            services.redis.clone(),
            &services.settings.redis_prefix,
            &holder,
            services.settings.scheduler.leader_ttl,
        );
        Ok(Self {
            services,
            leader,
            schedules: Arc::new(schedules),
        })
    }
}

impl std::ops::Deref for SchedulerContext {
    type Target = Services;

    fn deref(&self) -> &Services {
        &self.services
    }
}

/// Runs the scheduler until SIGTERM or SIGINT, then lets ticks being handled finish.
pub async fn run(settings: Settings) -> anyhow::Result<()> {
    shared::queue::validate_prefix(&settings.redis_prefix)?;
    // Installed before connecting, so a SIGTERM during start-up is a clean stop, not a kill.
    let signal = shutdown_signal().context("Failed to install signal handlers")?;
    let ctx = SchedulerContext::connect(settings).await?;
    if let Some(addr) = ctx.settings.metrics_addr {
        metrics::serve(&ctx, addr).await?;
    }
    shared::metrics::LEADER.set([], 0);
    // The lock is kept (or sought) until the monitor has stopped, then released at once, so
    // another replica takes over without waiting for it to expire.
    let (stop_leading, stopped) = tokio::sync::oneshot::channel::<()>();
    let leader = ctx.leader.clone();
    let leading = tokio::spawn(async move {
        leader
            .run(async move {
                let _ = stopped.await;
            })
            .await;
    });
    let outcome = run_until_stopped(build_monitor(&ctx), signal).await;
    let _ = stop_leading.send(());
    if let Err(e) = leading.await {
        tracing::warn!(error.message = %e, "the leader lock task ended abnormally");
    }
    let signal = outcome?;
    tracing::info!(%signal, "scheduler stopped");
    Ok(())
}

/// The apalis monitor with every schedule registered.
pub fn build_monitor(ctx: &SchedulerContext) -> Monitor {
    let monitor = Monitor::new()
        .shutdown_timeout(SHUTDOWN_TIMEOUT)
        .should_restart(restart_cron_worker);
    schedules::register_all(monitor, ctx)
}

/// A cron worker only fails when its schedule does (e.g. the next tick is already in the past
/// after a clock jump). A restarted one computes its next tick from the current time and waits
/// for it, so restarting cannot spin; without a restart that schedule would silently stop.
fn restart_cron_worker(worker: &WorkerContext, error: &WorkerError) -> bool {
    tracing::error!(
        worker.name = worker.name(),
        worker.restarts = worker.restarts(),
        error.message = %error,
        error.cause_chain = ?error,
        "schedule failed"
    );
    !worker.is_shutting_down()
}

/// Runs `monitor` until `signal` fires and returns which signal it was.
///
/// A monitor with a shutdown timeout returns from `run_with_signal` as soon as it has no
/// running worker, without waiting for the signal (apalis-core 1.0.0; with zero workers at
/// once). So the signal is shared and awaited again afterwards: the process keeps running
/// until it is told to stop, whether or not any schedule is registered.
pub async fn run_until_stopped(
    monitor: Monitor,
    signal: impl Future<Output = StopSignal> + Send,
) -> anyhow::Result<StopSignal> {
    let schedules = monitor.context().workers().len();
    let signal = signal
        .inspect(|signal| tracing::info!(%signal, "shutdown signal received"))
        .shared();
    tracing::info!(schedules, "scheduler running");
    let outcome = monitor
        .run_with_signal(signal.clone().map(|_| Ok(())))
        .await;
    let signal = signal.await;
    outcome.context("Scheduler monitor failed")?;
    Ok(signal)
}
