//! The jobs the worker fleet runs: one [`Job`] per queue, each defined in its own file here,
//! and [`visit_all`], the one list of them. The worker registers a consumer per entry, the
//! scheduler emits the periodic ones, and `WORKER_QUEUES` is checked against it.
//!
//! A job is its name (also the queue's name and `jobs.kind`), the payload its tasks carry, what
//! a run does with [`Services`], and how a failed run is treated. Delivery is at least once, so
//! every run is idempotent: a job tracked in the `jobs` table claims its row in Postgres first
//! and caps its attempts there (apalis-redis 1.0.0 ignores `max_attempts`), a webhook event
//! claims its `webhook_events` row, and a periodic job redoes the whole sweep.
//!
//! Adding a job: a file in this folder with the struct and its `impl Job` (or `impl Periodic`),
//! and one line in [`visit_all`].

mod checkout;
mod claims;
mod expire_orders;
mod geocode_address;
mod payment_event;
mod process_image;
mod prune_jobs;
mod prune_sessions;
mod purge_inactive;
mod reconcile_payments;
mod reconcile_stock;
mod refund_order;
mod requeue_stale;
mod sweep_images;

use std::{any::TypeId, fmt::Debug, future::Future, time::Duration};

use serde::{Serialize, de::DeserializeOwned};

pub use self::{
    checkout::Checkout,
    claims::{CLAIM_LEASE, ClaimFailure, claimed, redelivery_delay, release_after_error},
    expire_orders::ExpireOrders,
    geocode_address::GeocodeAddress,
    payment_event::PaymentEvent,
    process_image::ProcessImage,
    prune_jobs::PruneJobs,
    prune_sessions::PruneSessions,
    purge_inactive::PurgeInactive,
    reconcile_payments::ReconcilePayments,
    reconcile_stock::ReconcileStock,
    refund_order::RefundOrder,
    requeue_stale::RequeueStale,
    sweep_images::SweepImages,
};
use crate::{
    queue::{JobQueue, JobTask, Payload, PushError, TickTask},
    services::Services,
};

/// Every job, once: the registry the worker, the scheduler and the queue list derive from.
pub fn visit_all(visit: &mut impl Visit) {
    visit.job::<Checkout>();
    visit.job::<PaymentEvent>();
    visit.job::<GeocodeAddress>();
    visit.job::<RefundOrder>();
    visit.job::<ProcessImage>();
    visit.job::<ExpireOrders>();
    visit.job::<ReconcileStock>();
    visit.job::<RequeueStale>();
    visit.job::<PurgeInactive>();
    visit.job::<PruneJobs>();
    visit.job::<ReconcilePayments>();
    visit.job::<PruneSessions>();
    visit.job::<SweepImages>();
}

/// Something done once per registered job (see [`visit_all`]).
pub trait Visit {
    /// Called with every registered job in turn.
    fn job<J: Job>(&mut self);
}

/// Every job name, i.e. every queue a worker can consume, in registration order.
pub fn names() -> Vec<&'static str> {
    struct Names(Vec<&'static str>);
    impl Visit for Names {
        fn job<J: Job>(&mut self) {
            self.0.push(J::NAME);
        }
    }
    let mut names = Names(Vec::new());
    visit_all(&mut names);
    names.0
}

/// The jobs whose tasks stand for a `jobs` row (a [`JobTask`]), i.e. the kinds such a row
/// can have.
pub fn row_jobs() -> Vec<&'static str> {
    struct Rows(Vec<&'static str>);
    impl Visit for Rows {
        fn job<J: Job>(&mut self) {
            if TypeId::of::<J::Payload>() == TypeId::of::<JobTask>() {
                self.0.push(J::NAME);
            }
        }
    }
    let mut rows = Rows(Vec::new());
    visit_all(&mut rows);
    rows.0
}

/// Every periodic job with its default schedule (a cron expression with seconds, UTC).
pub fn periodic() -> Vec<(&'static str, &'static str)> {
    struct Schedules(Vec<(&'static str, &'static str)>);
    impl Visit for Schedules {
        fn job<J: Job>(&mut self) {
            if let Some(schedule) = J::SCHEDULE {
                self.0.push((J::NAME, schedule));
            }
        }
    }
    let mut schedules = Schedules(Vec::new());
    visit_all(&mut schedules);
    schedules.0
}

/// How a failed run is treated by the worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// Expected to clear up on its own (the payment provider unreachable): delivered again
    /// with apalis' backoff and logged as a warning, up to apalis' delivery limit.
    Transient,
    /// Unexpected (database or Redis down, a bug): delivered again and logged as an error, up
    /// to apalis' delivery limit; past it the sweeper re-pushes the job once it is stale.
    Unexpected,
    /// Not delivered again: the next tick does the same work from scratch (periodic jobs).
    NextTick,
}

/// One kind of background work, consumed from its own queue.
pub trait Job: Send + Sync + 'static {
    /// The job's name: its queue (under `REDIS_PREFIX`), `jobs.kind`, and the metric label.
    const NAME: &'static str;
    /// The default schedule of a periodic job (`SCHEDULE_<NAME>` overrides it); `None` for
    /// jobs that are enqueued by a request or an event.
    const SCHEDULE: Option<&'static str> = None;
    /// What a task carries.
    type Payload: Payload;
    /// What a run reports (logged, and stored by apalis as the task result).
    type Output: Serialize + DeserializeOwned + Debug + Send + Sync + 'static;
    /// Why a run failed.
    type Error: std::error::Error + Send + Sync + 'static;

    /// Does the work of one delivery.
    fn run(
        services: &Services,
        payload: Self::Payload,
    ) -> impl Future<Output = Result<Self::Output, Self::Error>> + Send;

    /// How a failure of [`Job::run`] is treated.
    fn failure(error: &Self::Error) -> Failure;

    /// Pushes a task of this job.
    fn enqueue(
        queue: &JobQueue,
        payload: Self::Payload,
    ) -> impl Future<Output = Result<(), PushError>> + Send {
        queue.push(Self::NAME, payload, Duration::ZERO)
    }

    /// Pushes a task of this job that workers see only after `delay` (a job's own backoff).
    fn enqueue_after(
        queue: &JobQueue,
        payload: Self::Payload,
        delay: Duration,
    ) -> impl Future<Output = Result<(), PushError>> + Send {
        queue.push(Self::NAME, payload, delay)
    }

    /// Pushes the task of work whose record is already committed. A push Redis does not take
    /// is logged and left to the sweeper, which re-pushes every stale record: the caller has
    /// accepted the work either way.
    fn enqueue_committed(
        queue: &JobQueue,
        payload: Self::Payload,
    ) -> impl Future<Output = ()> + Send {
        async move {
            if let Err(e) = Self::enqueue(queue, payload).await {
                tracing::warn!(job.kind = Self::NAME, error.message = %e, "push failed; left for the sweeper");
            }
        }
    }
}

/// A job the scheduler emits on a cron schedule. Every periodic job has the same shape: its
/// task is the tick, its run is a sweep that is safe to repeat, and a failed run waits for
/// the next tick instead of being retried.
pub trait Periodic: Send + Sync + 'static {
    /// See [`Job::NAME`].
    const NAME: &'static str;
    /// The default schedule: a cron expression with seconds, in UTC.
    const SCHEDULE: &'static str;
    /// What a run reports.
    type Report: Serialize + DeserializeOwned + Debug + Send + Sync + 'static;
    /// Why a run stopped early.
    type Error: std::error::Error + Send + Sync + 'static;

    /// One sweep.
    fn run(services: &Services) -> impl Future<Output = Result<Self::Report, Self::Error>> + Send;
}

impl<P: Periodic> Job for P {
    const NAME: &'static str = P::NAME;
    const SCHEDULE: Option<&'static str> = Some(P::SCHEDULE);
    type Payload = TickTask;
    type Output = P::Report;
    type Error = P::Error;

    fn run(
        services: &Services,
        _tick: TickTask,
    ) -> impl Future<Output = Result<Self::Output, Self::Error>> + Send {
        P::run(services)
    }

    fn failure(_: &Self::Error) -> Failure {
        Failure::NextTick
    }
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use super::*;

    #[test]
    fn job_names_are_unique_and_contain_no_colon() {
        let names = names();
        let mut unique = names.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), names.len());
        assert_eq!(names.len(), 13);
        assert!(names.iter().all(|q| !q.is_empty() && !q.contains(':')));
        assert_eq!(Checkout::SCHEDULE, None);
        assert_eq!(
            row_jobs(),
            [
                Checkout::NAME,
                GeocodeAddress::NAME,
                RefundOrder::NAME,
                ProcessImage::NAME
            ]
        );
    }

    #[test]
    fn the_default_schedules_are_the_documented_ones() {
        let every = |job: &str| {
            let (_, cron) = periodic()
                .into_iter()
                .find(|(name, _)| *name == job)
                .expect("a periodic job");
            let schedule = cron::Schedule::from_str(cron).expect("a valid cron expression");
            let mut upcoming = schedule.upcoming(chrono::Utc);
            let (a, b) = (upcoming.next().unwrap(), upcoming.next().unwrap());
            (b - a).num_seconds()
        };
        assert_eq!(periodic().len(), 8);
        assert_eq!(every(<ExpireOrders as Job>::NAME), 60);
        assert_eq!(every(<ReconcileStock as Job>::NAME), 300);
        assert_eq!(every(<RequeueStale as Job>::NAME), 15);
        assert_eq!(every(<PurgeInactive as Job>::NAME), 86_400);
        assert_eq!(every(<PruneJobs as Job>::NAME), 3_600);
        assert_eq!(every(<ReconcilePayments as Job>::NAME), 600);
        assert_eq!(every(<PruneSessions as Job>::NAME), 86_400);
        assert_eq!(every(<SweepImages as Job>::NAME), 3_600);
    }
}
