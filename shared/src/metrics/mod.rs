//! Prometheus metrics of every process: the metric names in one place (on `prometheus-client`,
//! through the thin [`Metric`] facade), and the small HTTP listener worker and scheduler serve
//! them on (`METRICS_ADDR`; the api serves `/metrics` itself).
//!
//! Labels only take values from small fixed sets (route templates, job kinds, outcomes), so the
//! number of series stays bounded.

mod process;
mod registry;
mod server;

pub use process::{COMMIT, VERSION};
pub use registry::{CONTENT_TYPE, Counter, Exported, FloatGauge, Gauge, Histogram, Metric, render};
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
pub static HTTP_REQUESTS: Counter<3> = Counter::counter(
    "http_requests_total",
    "HTTP requests answered, by route, method and status.",
    &["route", "method", "status"],
);

/// api: request latency by route and method.
pub static HTTP_DURATION: Histogram<2> = Histogram::histogram(
    "http_request_duration_seconds",
    "Time to answer an HTTP request.",
    &["route", "method"],
    HTTP_BUCKETS,
);

/// api: requests being answered right now.
pub static HTTP_IN_FLIGHT: Gauge<0> = Gauge::gauge(
    "http_requests_in_flight",
    "HTTP requests being answered.",
    &[],
);

/// api: requests waiting for their turn (`MAX_CONCURRENT_REQUESTS`).
pub static HTTP_QUEUED: Gauge<0> = Gauge::gauge(
    "http_requests_queued",
    "HTTP requests waiting for their turn to be answered.",
    &[],
);

/// api: requests answered 503 after waiting `REQUEST_QUEUE_TIMEOUT_MS` for their turn.
pub static HTTP_SHED: Counter<0> = Counter::counter(
    "http_requests_shed_total",
    "HTTP requests refused with 503 after waiting too long for their turn.",
    &[],
);

/// worker: deliveries by job kind and outcome (`ok`; `error`: will be retried; `aborted`: given
/// up; `panic`: the handler panicked, or was cut off by the shutdown timeout).
pub static JOBS: Counter<2> = Counter::counter(
    "jobs_total",
    "Job deliveries handled, by kind and outcome (ok, error, aborted, panic).",
    &["kind", "outcome"],
);

/// worker: how long one delivery took.
pub static JOB_DURATION: Histogram<1> = Histogram::histogram(
    "job_duration_seconds",
    "Time to handle one job delivery.",
    &["kind"],
    JOB_BUCKETS,
);

/// worker: deliveries being handled right now.
pub static JOBS_IN_FLIGHT: Gauge<1> = Gauge::gauge(
    "jobs_in_flight",
    "Job deliveries being handled by this process.",
    &["kind"],
);

/// worker: tasks per queue and state (`ready`: waiting for a worker; `scheduled`: pushed or
/// retrying, not yet due; `dead`: given up by apalis).
pub static QUEUE_DEPTH: Gauge<2> = Gauge::gauge(
    "queue_depth",
    "Tasks in each Redis queue, by state (ready, scheduled, dead).",
    &["queue", "state"],
);

/// worker: gate drift found by the last reconciliation, in units; `over` = counters above the
/// truth (the gate admits more than Postgres can reserve), `under` = below (it refuses sales).
pub static GATE_DRIFT_UNITS: Gauge<1> = Gauge::gauge(
    "stock_gate_drift_units",
    "Units by which gate counters differed from Postgres at the last reconciliation.",
    &["direction"],
);

/// worker: listings seen by the last reconciliation (`checked`, `drifted`, `skipped`: changed
/// by a live checkout meanwhile, left for the next run).
pub static GATE_LISTINGS: Gauge<1> = Gauge::gauge(
    "stock_gate_reconciled_listings",
    "Gate counters at the last reconciliation, by state (checked, drifted, skipped).",
    &["state"],
);

/// worker: work the sweeper pushed again, by job kind.
pub static REQUEUED: Counter<1> = Counter::counter(
    "sweep_requeued_total",
    "Jobs and webhook events pushed again by requeue_stale, by kind.",
    &["kind"],
);

/// worker: rows and tasks deleted by purge and prune.
pub static DELETED: Counter<1> = Counter::counter(
    "sweep_deleted_total",
    "Rows and queue tasks deleted by purge_inactive, prune_jobs and prune_sessions, by what.",
    &["what"],
);

/// scheduler: 1 while this replica holds the leader lock.
pub static LEADER: Gauge<0> = Gauge::gauge(
    "scheduler_leader",
    "1 while this scheduler replica holds the leader lock, else 0.",
    &[],
);

/// scheduler: ticks by job and outcome (`emitted`, `not_leader`, `failed`).
pub static TICKS: Counter<2> = Counter::counter(
    "scheduler_ticks_total",
    "Schedule ticks, by job and outcome (emitted, not_leader, failed).",
    &["job", "outcome"],
);

/// api (cancel) and worker (webhook events, expiry): payments refused for not matching.
pub static PAYMENT_MISMATCHES: Counter<2> = Counter::counter(
    "payment_mismatches_total",
    "Payments refused because the PaymentIntent did not match its order, by where they were \
     noticed (webhook, expiry, cancel, late_refund) and the field (id, amount, amount_received, \
     currency, order_ref).",
    &["source", "field"],
);

/// worker: orders whose payment did not reconcile at the last `reconcile_payments` run.
pub static PAYMENT_DRIFT: Gauge<1> = Gauge::gauge(
    "payment_drift_orders",
    "Orders whose ledger or Stripe payment disagreed with the order at the last payment \
     reconciliation, by kind (ledger, stripe).",
    &["kind"],
);

/// scheduler (the leader only): work waiting in PostgreSQL per queue, read at each scrape:
/// `jobs` rows still `queued` (also those waiting for a retry) by kind, for every job with a
/// row, and unprocessed webhook events as `payment_event`. Seen from PostgreSQL rather than a
/// worker, so it is there when no worker is (and one replica exports it, so `sum` and `max`
/// over replicas are that value).
pub static JOB_QUEUE_BACKLOG: Gauge<1> = Gauge::gauge(
    "job_queue_backlog",
    "Work waiting in PostgreSQL for a worker, by queue (queued jobs rows; unprocessed webhook \
     events as payment_event); exported by the scheduler leader only.",
    &["queue"],
);

/// scheduler (the leader only): how long the oldest waiting item of each queue has waited.
pub static JOB_QUEUE_OLDEST_AGE: FloatGauge<1> = FloatGauge::float_gauge(
    "job_queue_oldest_age_seconds",
    "Seconds since the oldest work waiting in PostgreSQL was created, by queue (0 when none); \
     exported by the scheduler leader only.",
    &["queue"],
);

/// What the api exposes (and every process: `build_info` and the process metrics).
pub const API_FAMILIES: &[&dyn Exported] = &[
    &HTTP_REQUESTS,
    &HTTP_DURATION,
    &HTTP_IN_FLIGHT,
    &HTTP_QUEUED,
    &HTTP_SHED,
    &PAYMENT_MISMATCHES,
];

/// What a worker exposes (with `build_info` and the process metrics).
pub const WORKER_FAMILIES: &[&dyn Exported] = &[
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
];

/// What the scheduler exposes (with `build_info` and the process metrics).
pub const SCHEDULER_FAMILIES: &[&dyn Exported] =
    &[&LEADER, &TICKS, &JOB_QUEUE_BACKLOG, &JOB_QUEUE_OLDEST_AGE];

#[cfg(test)]
mod tests {
    use super::*;

    /// Every family with the name, type and help text it is exported with, before any series.
    #[test]
    fn every_family_is_exported_under_its_own_name_and_help() {
        let families: Vec<&dyn Exported> =
            [API_FAMILIES, WORKER_FAMILIES, SCHEDULER_FAMILIES].concat();
        let text = render(&families);
        for (name, kind, help) in [
            ("http_requests_total", "counter", HTTP_REQUESTS_HELP),
            (
                "jobs_total",
                "counter",
                "Job deliveries handled, by kind and outcome (ok, error, aborted, panic).",
            ),
            (
                "scheduler_ticks_total",
                "counter",
                "Schedule ticks, by job and outcome (emitted, not_leader, failed).",
            ),
            (
                "sweep_requeued_total",
                "counter",
                "Jobs and webhook events pushed again by requeue_stale, by kind.",
            ),
            (
                "http_request_duration_seconds",
                "histogram",
                "Time to answer an HTTP request.",
            ),
            (
                "http_requests_in_flight",
                "gauge",
                "HTTP requests being answered.",
            ),
            (
                "scheduler_leader",
                "gauge",
                "1 while this scheduler replica holds the leader lock, else 0.",
            ),
            (
                "process_resident_memory_bytes",
                "gauge",
                "Resident memory of this process.",
            ),
        ] {
            let described = format!("# HELP {name} {help}\n# TYPE {name} {kind}\n");
            assert!(text.contains(&described), "no {described:?} in:\n{text}");
        }
        for name in [
            "payment_mismatches_total",
            "sweep_deleted_total",
            "job_duration_seconds",
            "jobs_in_flight",
            "queue_depth",
            "stock_gate_drift_units",
            "stock_gate_reconciled_listings",
            "payment_drift_orders",
            "job_queue_backlog",
            "job_queue_oldest_age_seconds",
            "build_info",
            "process_cpu_seconds_total",
            "process_start_time_seconds",
        ] {
            assert!(
                text.contains(&format!("# TYPE {name} ")),
                "no {name} in:\n{text}"
            );
        }
        assert!(!text.contains("_total_total"), "{text}");
    }

    /// `ops/metrics.txt` lists every exported family (`<name> <type>`), for the checks of the
    /// alert rules and dashboards (`scripts/ops-check`), which read it instead of the code.
    #[test]
    fn ops_metrics_txt_lists_exactly_the_exported_families() {
        let families: Vec<&dyn Exported> =
            [API_FAMILIES, WORKER_FAMILIES, SCHEDULER_FAMILIES].concat();
        let text = render(&families);
        let mut exported: Vec<String> = text
            .lines()
            .filter_map(|line| line.strip_prefix("# TYPE "))
            .map(str::to_owned)
            .collect();
        exported.sort();
        exported.dedup();
        let listed: Vec<String> = include_str!("../../../ops/metrics.txt")
            .lines()
            .map(str::trim)
            .filter(|line| !line.is_empty() && !line.starts_with('#'))
            .map(str::to_owned)
            .collect();
        assert_eq!(
            listed,
            exported,
            "update ops/metrics.txt to:\n{}",
            exported.join("\n")
        );
    }

    const HTTP_REQUESTS_HELP: &str = "HTTP requests answered, by route, method and status.";
}
