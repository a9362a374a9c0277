//! Prometheus metrics of every process: the metric names in one place, and the small HTTP
//! listener worker and scheduler serve them on (`METRICS_ADDR`; the api serves `/metrics`
//! itself).
//!
//! Labels only take values from small fixed sets (route templates, job kinds, outcomes), so the
//! number of series stays bounded.

mod registry;
mod server;

pub use registry::{Family, render};
pub use server::{Refresh, serve};

/// Bucket bounds (seconds) for HTTP requests: most answer in milliseconds.
const HTTP_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Bucket bounds (seconds) for jobs: from a quick row update to a slow payment provider.
const JOB_BUCKETS: &[f64] = &[
    0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0,
];

/// api: requests by operation (`route`, the OpenAPI operation id or a fixed name), method and
/// status.
pub static HTTP_REQUESTS: Family = Family::counter(
    "http_requests_total",
    "HTTP requests answered, by route, method and status.",
    &["route", "method", "status"],
);

/// api: request latency by route and method.
pub static HTTP_DURATION: Family = Family::histogram(
    "http_request_duration_seconds",
    "Time to answer an HTTP request.",
    &["route", "method"],
    HTTP_BUCKETS,
);

/// api: requests being answered right now.
pub static HTTP_IN_FLIGHT: Family = Family::gauge(
    "http_requests_in_flight",
    "HTTP requests being answered.",
    &[],
);

/// worker: deliveries by job kind and outcome (`ok`; `error`: will be retried; `aborted`: given
/// up; `panic`: the handler panicked, or was cut off by the shutdown timeout).
pub static JOBS: Family = Family::counter(
    "jobs_total",
    "Job deliveries handled, by kind and outcome (ok, error, aborted, panic).",
    &["kind", "outcome"],
);

/// worker: how long one delivery took.
pub static JOB_DURATION: Family = Family::histogram(
    "job_duration_seconds",
    "Time to handle one job delivery.",
    &["kind"],
    JOB_BUCKETS,
);

/// worker: deliveries being handled right now.
pub static JOBS_IN_FLIGHT: Family = Family::gauge(
    "jobs_in_flight",
    "Job deliveries being handled by this process.",
    &["kind"],
);

/// worker: tasks per queue and state (`ready`: waiting for a worker; `scheduled`: pushed or
/// retrying, not yet due; `dead`: given up by apalis).
pub static QUEUE_DEPTH: Family = Family::gauge(
    "queue_depth",
    "Tasks in each Redis queue, by state (ready, scheduled, dead).",
    &["queue", "state"],
);

/// worker: gate drift found by the last reconciliation, in units; `over` = counters above the
/// truth (the gate admits more than Postgres can reserve), `under` = below (it refuses sales).
pub static GATE_DRIFT_UNITS: Family = Family::gauge(
    "stock_gate_drift_units",
    "Units by which gate counters differed from Postgres at the last reconciliation.",
    &["direction"],
);

/// worker: listings seen by the last reconciliation (`checked`, `drifted`, `skipped`: changed
/// by a live checkout meanwhile, left for the next run).
pub static GATE_LISTINGS: Family = Family::gauge(
    "stock_gate_reconciled_listings",
    "Gate counters at the last reconciliation, by state (checked, drifted, skipped).",
    &["state"],
);

/// worker: work the sweeper pushed again, by job kind.
pub static REQUEUED: Family = Family::counter(
    "sweep_requeued_total",
    "Jobs and webhook events pushed again by requeue_stale, by kind.",
    &["kind"],
);

/// worker: rows and tasks deleted by purge and prune.
pub static DELETED: Family = Family::counter(
    "sweep_deleted_total",
    "Rows and queue tasks deleted by purge_inactive, prune_jobs and prune_sessions, by what.",
    &["what"],
);

/// scheduler: 1 while this replica holds the leader lock.
pub static LEADER: Family = Family::gauge(
    "scheduler_leader",
    "1 while this scheduler replica holds the leader lock, else 0.",
    &[],
);

/// scheduler: ticks by job and outcome (`emitted`, `not_leader`, `failed`).
pub static TICKS: Family = Family::counter(
    "scheduler_ticks_total",
    "Schedule ticks, by job and outcome (emitted, not_leader, failed).",
    &["job", "outcome"],
);

/// api (cancel) and worker (webhook events, expiry): payments refused for not matching.
pub static PAYMENT_MISMATCHES: Family = Family::counter(
    "payment_mismatches_total",
    "Payments refused because the PaymentIntent did not match its order, by where they were \
     noticed (webhook, expiry, cancel, late_refund) and the field (id, amount, amount_received, \
     currency, order_ref).",
    &["source", "field"],
);

/// worker: orders whose payment did not reconcile at the last `reconcile_payments` run.
pub static PAYMENT_DRIFT: Family = Family::gauge(
    "payment_drift_orders",
    "Orders whose ledger or Stripe payment disagreed with the order at the last payment \
     reconciliation, by kind (ledger, stripe).",
    &["kind"],
);

/// Every process: resident memory, refreshed on each scrape.
pub static RSS: Family = Family::gauge(
    "process_resident_memory_bytes",
    "Resident memory of this process.",
    &[],
);

/// What the api exposes.
pub const API_FAMILIES: &[&Family] = &[
    &HTTP_REQUESTS,
    &HTTP_DURATION,
    &HTTP_IN_FLIGHT,
    &PAYMENT_MISMATCHES,
    &RSS,
];

/// What a worker exposes.
pub const WORKER_FAMILIES: &[&Family] = &[
    &JOBS,
    &JOB_DURATION,
    &JOBS_IN_FLIGHT,
    &QUEUE_DEPTH,
    &GATE_DRIFT_UNITS,
    &GATE_LISTINGS,
    &REQUEUED,
    &DELETED,
    &PAYMENT_MISMATCHES,
    &PAYMENT_DRIFT,
    &RSS,
];

/// What the scheduler exposes.
pub const SCHEDULER_FAMILIES: &[&Family] = &[&LEADER, &TICKS, &RSS];

/// Reads this process's resident memory into [`RSS`] (Linux; elsewhere it stays unset).
pub fn refresh_rss() {
    let pages = std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<f64>().ok());
    if let Some(pages) = pages {
        // The page size is 4 KiB on every platform we deploy to.
        RSS.set(&[], pages * 4096.0);
    }
}
