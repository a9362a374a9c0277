//! Every schedule of the scheduler, registered in [`register_all`].
//!
//! No schedule exists yet. Each sweep job issue adds its payload to `shared::jobs`, its handler
//! to the worker, and here a cron worker whose tick only pushes that job:
//!
//! ```text
//! // Six or seven fields: seconds first. `cron::Schedule` (cron 0.17, the major apalis-cron
//! // 1.0 depends on) implements `apalis_cron::Schedule`.
//! let schedule = cron::Schedule::from_str("0 */5 * * * *")?;
//! let config = jobs::redis_config(&ctx.settings.redis_prefix, jobs::EXPIRE_ORDERS, &ctx.settings.worker);
//! let queue = RedisStorage::<jobs::ExpireOrders>::new(ctx.redis.clone()).with_config(config);
//! let monitor = monitor.register(move |_restarts| {
//!     WorkerBuilder::new(format!("cron-{}", jobs::EXPIRE_ORDERS))
//!         .backend(CronScheduler::new(schedule.clone()))
//!         .data(queue.clone())
//!         .enable_tracing()
//!         .build(enqueue_expire_orders)
//! });
//!
//! async fn enqueue_expire_orders(
//!     tick: Tick,
//!     mut queue: Data<RedisStorage<jobs::ExpireOrders>>,
//! ) -> Result<(), BoxDynError> {
//!     let task = TaskBuilder::new(jobs::ExpireOrders {})
//!         .idempotency_key(format!("{}-{}", jobs::EXPIRE_ORDERS, tick.get_timestamp()))
//!         .build();
//!     queue.push_task(task).await?;
//!     Ok(())
//! }
//! ```
//!
//! The schedule runs in memory in every scheduler replica, so each replica fires each tick;
//! the idempotency key (kept for `shared::jobs::IDEMPOTENCY_TTL`) makes that one job. Ticks
//! missed while no scheduler runs are skipped, so sweeps must catch up on their own (e.g.
//! "expire every order older than its TTL", not "expire the orders of the last 5 minutes").
//! `scheduler/tests/scheduler/schedule.rs` exercises this exact shape.

use apalis::prelude::Monitor;

use crate::SchedulerContext;

/// Registers a cron worker for every schedule.
#[expect(
    unused_variables,
    reason = "no schedule exists yet; the first one uses ctx"
)]
pub fn register_all(monitor: Monitor, ctx: &SchedulerContext) -> Monitor {
    monitor
}
