//! Which queues this replica consumes, and the pieces every job worker is built from.

use std::collections::BTreeSet;

use apalis::prelude::{BackendExt, PollWith};
use apalis_redis::RedisStorage;
use shared::{
    config::{ConfigError, WorkerSettings},
    jobs, queue,
};

use crate::{context::JobContext, wake::WakeOnPush};

/// The queues named by `WORKER_QUEUES`, validated against the registered jobs
/// ([`shared::jobs::names`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QueueSelection {
    /// `all`: consume every queue this build has a handler for.
    All,
    /// Only these job names, e.g. to give slow geocoding its own replicas.
    Only(BTreeSet<String>),
}

impl QueueSelection {
    /// Parses the `WORKER_QUEUES` list. An unknown name is an error rather than being ignored,
    /// because a typo would otherwise leave a queue without any consumer, silently.
    pub fn from_names(names: &[String]) -> Result<Self, ConfigError> {
        if names.iter().any(|n| n == "all") {
            return Ok(Self::All);
        }
        if names.is_empty() {
            return Err(invalid_queues(
                "must name at least one queue, or `all`".to_owned(),
            ));
        }
        let registered = jobs::names();
        if let Some(unknown) = names.iter().find(|n| !registered.contains(&n.as_str())) {
            let known = registered.join(", ");
            return Err(invalid_queues(format!(
                "unknown queue {unknown:?} (known: all, {known})"
            )));
        }
        Ok(Self::Only(names.iter().cloned().collect()))
    }

    /// Whether this replica consumes the queue of `job`.
    pub fn includes(&self, job: &str) -> bool {
        match self {
            Self::All => true,
            Self::Only(names) => names.contains(job),
        }
    }
}

fn invalid_queues(reason: String) -> ConfigError {
    ConfigError {
        name: "WORKER_QUEUES",
        reason,
    }
}

/// Rejects worker settings that parse but cannot work: zero concurrency would never run a job
/// (and apalis panics on a zero batch size), a zero poll interval would spin on Redis.
pub fn validate(worker: &WorkerSettings) -> Result<(), ConfigError> {
    if worker.concurrency == 0 {
        let reason = "must be greater than zero".to_owned();
        return Err(ConfigError {
            name: "WORKER_CONCURRENCY",
            reason,
        });
    }
    if worker.poll_interval.is_zero() {
        let reason = "must be greater than zero".to_owned();
        return Err(ConfigError {
            name: "WORKER_POLL_INTERVAL_MS",
            reason,
        });
    }
    Ok(())
}

/// A Redis queue as a worker consumes it: the shared [`queue::redis_config`] plus wake-ups.
pub type JobBackend<T> = PollWith<RedisStorage<T>, WakeOnPush>;

/// Builds the backend for the queue of `job`, carrying payloads of type `T`.
///
/// It fetches as soon as a producer announces a push, and at least every
/// `WORKER_POLL_INTERVAL_MS`: on its own, an idle apalis-redis worker only looks for new tasks
/// at its heartbeat, which delays pickup by seconds. The pub/sub wake-up of
/// `RedisStorageFactory` does not fire for pushes and is not used (see [`crate::wake`]).
pub fn job_backend<T>(ctx: &JobContext, job: &str) -> JobBackend<T> {
    let settings = &ctx.settings;
    let config = queue::redis_config(&settings.redis_prefix, job, &settings.worker);
    let notify = ctx
        .wakeups
        .notifier(&queue::queue_name(&settings.redis_prefix, job));
    RedisStorage::new(ctx.redis.clone())
        .with_config(config)
        .poll_with_strategy(WakeOnPush::new(settings.worker.poll_interval, notify))
}

/// A worker name that no other process, and no earlier run of this one, has used:
/// `{queue}-{hostname}-{pid}-{random}`.
///
/// apalis-redis refuses to register a name that sent a heartbeat within the orphan timeout,
/// and a graceful shutdown does not release the name. Replicas on one host differ
/// by pid, containers that all run as pid 1 differ by hostname, and the random part covers a
/// restart of a failed worker inside the same process (the monitor asks for a fresh worker,
/// and so a fresh name, on each restart).
pub fn worker_name(queue: &str) -> String {
    let random = uuid::Uuid::new_v4().simple().to_string();
    format!(
        "{queue}-{}-{}-{}",
        shared::telemetry::host_name(),
        std::process::id(),
        &random[..8]
    )
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use shared::jobs::{Checkout, GeocodeAddress, Job as _, PaymentEvent};

    use super::*;

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn all_selects_every_queue() {
        let selection = QueueSelection::from_names(&names(&["all"])).unwrap();
        assert_eq!(selection, QueueSelection::All);
        assert!(jobs::names().iter().all(|q| selection.includes(q)));
    }

    #[test]
    fn a_list_selects_only_the_named_queues() {
        let selection =
            QueueSelection::from_names(&names(&[Checkout::NAME, PaymentEvent::NAME])).unwrap();
        assert!(selection.includes(Checkout::NAME));
        assert!(selection.includes(PaymentEvent::NAME));
        assert!(!selection.includes(GeocodeAddress::NAME));
    }

    #[test]
    fn an_unknown_or_empty_queue_list_names_the_variable() {
        for list in [names(&["checkout", "chekout"]), names(&[])] {
            let err = QueueSelection::from_names(&list).unwrap_err();
            assert_eq!(err.name, "WORKER_QUEUES");
        }
    }

    #[test]
    fn zero_concurrency_or_poll_interval_is_rejected() {
        let good = WorkerSettings {
            concurrency: 8,
            queues: names(&["all"]),
            poll_interval: Duration::from_millis(20),
            shutdown_timeout: Duration::from_secs(30),
        };
        assert!(validate(&good).is_ok());
        let err = validate(&WorkerSettings {
            concurrency: 0,
            ..good.clone()
        })
        .unwrap_err();
        assert_eq!(err.name, "WORKER_CONCURRENCY");
        let err = validate(&WorkerSettings {
            poll_interval: Duration::ZERO,
            ..good
        })
        .unwrap_err();
        assert_eq!(err.name, "WORKER_POLL_INTERVAL_MS");
    }

    #[test]
    fn worker_names_are_unique_and_start_with_the_queue() {
        let a = worker_name("mp-checkout");
        let b = worker_name("mp-checkout");
        assert_ne!(a, b);
        assert!(a.starts_with("mp-checkout-"));
        assert!(a.contains(&format!("-{}-", std::process::id())));
        assert!(!a.contains(':'));
    }
}
