//! Job payloads and queue names shared by the api (producer) and the worker (consumer).
//!
//! Producers and consumers must agree on two things besides the payload type: the full queue
//! name and the apalis-redis [`Config`] used on both sides. Both are built here, so a push from
//! the api and a fetch in the worker can never disagree (see STACK.md, "Pitfalls").

use std::time::Duration;

use apalis_redis::Config;

use crate::config::{ConfigError, WorkerSettings};

/// Checkout processing after the customer confirms an order.
pub const CHECKOUT: &str = "checkout";
/// A verified Stripe webhook event to apply to an order.
pub const PAYMENT_EVENT: &str = "payment_event";
/// Geocoding of a newly saved address.
pub const GEOCODE_ADDRESS: &str = "geocode_address";
/// Sweep that releases reservations of pending orders past their TTL.
pub const EXPIRE_ORDERS: &str = "expire_orders";
/// Sweep that recomputes reserved stock from the orders that hold it.
pub const RECONCILE_STOCK: &str = "reconcile_stock";
/// Sweep that re-enqueues outbox rows whose job was never picked up.
pub const REQUEUE_STALE: &str = "requeue_stale";
/// Sweep that removes long-inactive data (sessions, abandoned carts).
pub const PURGE_INACTIVE: &str = "purge_inactive";
/// Sweep that deletes finished apalis tasks, since Redis keeps them forever (pitfall 10).
pub const PRUNE_JOBS: &str = "prune_jobs";
/// A refund of unshipped lines of a paid order, asked for by its buyer or a seller.
pub const REFUND_ORDER: &str = "refund_order";
/// Sweep that compares recent orders' ledgers with their payments at Stripe and reports drift.
pub const RECONCILE_PAYMENTS: &str = "reconcile_payments";

/// Every job name, i.e. every queue a worker can consume; `WORKER_QUEUES` is checked against it.
pub const QUEUES: [&str; 10] = [
    CHECKOUT,
    PAYMENT_EVENT,
    GEOCODE_ADDRESS,
    EXPIRE_ORDERS,
    RECONCILE_STOCK,
    REQUEUE_STALE,
    PURGE_INACTIVE,
    PRUNE_JOBS,
    REFUND_ORDER,
    RECONCILE_PAYMENTS,
];

/// How long an idempotency key blocks a duplicate push. apalis-redis 1.0.0 deletes the key at
/// once when no TTL is set, so without this every duplicate webhook or cron tick would be queued
/// again (pitfall 1). A day covers Stripe's retry window and every cron period we use.
pub const IDEMPOTENCY_TTL: Duration = Duration::from_secs(24 * 60 * 60);

/// How often a worker proves it is alive and looks for orphaned tasks of dead workers. The
/// default (30 s) makes orphan recovery take minutes; 5 s keeps it short at a negligible cost
/// of one small Lua call per queue and process.
pub const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(5);

/// Heartbeats a worker may miss before its in-flight tasks are handed to another worker.
/// A dead worker's tasks are orphaned 25 s (5 × [`HEARTBEAT_INTERVAL`]) after its last
/// heartbeat, and a live worker notices at its next heartbeat, at most 5 s later: redelivery
/// after a crash takes at most 30 s. Set explicitly because apalis-redis disagrees with itself
/// on the default (10 vs 2, pitfall 8).
pub const MISSED_HEARTBEATS: usize = 5;

/// The full apalis queue name for `job` in the deployment namespace `prefix`.
///
/// Joined with `-`, never `:`: apalis-redis builds its own keys as `<queue>:<suffix>`, and its
/// pub/sub factory splits on `:` to recover the queue name (pitfall 9).
pub fn queue_name(prefix: &str, job: &str) -> String {
    format!("{prefix}-{job}")
}

/// Rejects a `REDIS_PREFIX` that would break queue names: empty (queues of all deployments
/// would collide), or containing `:` or whitespace (see [`queue_name`]).
pub fn validate_prefix(prefix: &str) -> Result<(), ConfigError> {
    let invalid = |reason: &str| ConfigError {
        name: "REDIS_PREFIX",
        reason: reason.to_owned(),
    };
    if prefix.is_empty() {
        return Err(invalid("must not be empty"));
    }
    if prefix.contains(':') || prefix.chars().any(char::is_whitespace) {
        return Err(invalid("must not contain ':' or whitespace"));
    }
    Ok(())
}

/// The apalis-redis configuration for one queue, used identically by producers and consumers.
///
/// * The queue is named explicitly: the default is the Rust type path of the payload, so a
///   rename would strand queued jobs (pitfall 9).
/// * The idempotency TTL is set, or idempotency keys would not deduplicate anything (pitfall 1).
///   It is applied at push time, which is why producers must use this config too.
/// * Heartbeat and missed heartbeats are explicit to bound orphan redelivery (pitfall 8).
/// * The batch size follows the worker concurrency: a worker reserves a whole batch at once and
///   other replicas cannot take those tasks, so a larger batch only adds latency for long jobs.
///   It is at least 1, because apalis panics on 0.
pub fn redis_config(prefix: &str, job: &str, worker: &WorkerSettings) -> Config {
    Config::default()
        .queue(queue_name(prefix, job))
        .idempotency_ttl(Some(IDEMPOTENCY_TTL))
        .heartbeat_interval(HEARTBEAT_INTERVAL)
        .missed_heartbeats(MISSED_HEARTBEATS)
        .batch_size(worker.concurrency.max(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn worker_settings(concurrency: usize) -> WorkerSettings {
        WorkerSettings {
            concurrency,
            queues: vec!["all".to_owned()],
            poll_interval: Duration::from_millis(20),
            shutdown_timeout: Duration::from_secs(30),
        }
    }

    #[test]
    fn a_queue_name_is_the_prefix_and_the_job_joined_by_a_dash() {
        assert_eq!(queue_name("mp", CHECKOUT), "mp-checkout");
        assert_eq!(
            queue_name("staging", PAYMENT_EVENT),
            "staging-payment_event"
        );
    }

    #[test]
    fn job_names_are_unique_and_contain_no_colon() {
        let mut names = QUEUES.to_vec();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), QUEUES.len());
        assert!(QUEUES.iter().all(|q| !q.is_empty() && !q.contains(':')));
    }

    #[test]
    fn a_prefix_with_a_colon_or_nothing_in_it_is_rejected() {
        assert!(validate_prefix("mp").is_ok());
        assert!(validate_prefix("test-1a2b").is_ok());
        for bad in ["", "mp:prod", "m p"] {
            let err = validate_prefix(bad).unwrap_err();
            assert_eq!(err.name, "REDIS_PREFIX", "{bad:?}");
        }
    }

    #[test]
    fn the_redis_config_applies_the_settings_stack_md_requires() {
        let config = redis_config("mp", EXPIRE_ORDERS, &worker_settings(8));
        assert_eq!(config.queue.as_ref(), "mp-expire_orders");
        assert_eq!(config.idempotency_ttl, Some(IDEMPOTENCY_TTL));
        assert_eq!(config.heartbeat_interval, Duration::from_secs(5));
        assert_eq!(config.orphaned_duration(), Duration::from_secs(25));
        assert_eq!(config.batch_size, 8);
    }

    #[test]
    fn a_zero_concurrency_still_gives_a_valid_batch_size() {
        assert_eq!(
            redis_config("mp", CHECKOUT, &worker_settings(0)).batch_size,
            1
        );
    }
}
