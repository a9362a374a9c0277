//! The figures of one scenario run: computed from the outcomes, checked against the targets,
//! printed for people and written as JSON.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    time::Instant,
};

use anyhow::Context;
use serde::Serialize;

use crate::{
    load::{Outcome, Phase},
    procstat::{CpuUsage, Memory},
    stats::Latency,
    timeline::Timeline,
    verify::{Integrity, Jobs, PgWork},
};

/// How the scenario was set up.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Config {
    pub api: String,
    pub buyers: usize,
    pub listings: usize,
    pub units_per_listing: i64,
    /// Checkout requests in flight at once (`null` = all buyers at once).
    pub concurrency: Option<usize>,
    pub poll_over_http: bool,
    pub api_pid: u32,
    pub worker_pid: u32,
    /// Server settings as passed to the bench (e.g. by `bench/run`), when known.
    pub server_env: BTreeMap<String, String>,
    pub label: Option<String>,
}

/// The warm-up checkouts run before the measured phase.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Warmup {
    pub checkouts: usize,
    pub succeeded: usize,
    /// From the first warm-up checkout to the last success.
    pub wait_s: f64,
}

/// Throughput and outcome counts of the measured phase.
#[derive(Debug, Clone, Serialize, Default)]
pub(crate) struct Throughput {
    /// First checkout sent → last checkout answered.
    pub all_answered_s: f64,
    /// First checkout sent → last answer or final job state seen.
    pub drain_s: f64,
    pub checkout_requests: usize,
    /// Checkout requests per second over `all_answered_s`.
    pub checkout_requests_per_s: f64,
    /// Every HTTP request of the phase (checkouts and job polls).
    pub http_requests: u64,
    pub http_requests_per_s: f64,
    pub accepted_202: usize,
    pub out_of_stock_409: usize,
    /// Any other status ("0" = no answer: connection error or timeout).
    pub other_statuses: BTreeMap<String, usize>,
    /// `<status>:<error.code>` → count, for every refused checkout.
    pub refusals: BTreeMap<String, usize>,
    /// Jobs seen `succeeded`.
    pub completed: usize,
    /// First checkout sent → last success seen.
    pub completed_window_s: f64,
    /// `completed / completed_window_s`.
    pub completed_per_s: f64,
    /// Completions per second between the first and the last success: the worker's pace once
    /// it runs, without the time before the first job finished (e.g. a stalled pickup).
    pub completed_steady_per_s: f64,
    /// final status → count for jobs not `succeeded` (failed, timeout, poll errors).
    pub not_completed: BTreeMap<String, usize>,
}

/// Client-side latencies.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Latencies {
    pub checkout_all: Latency,
    pub checkout_202: Latency,
    pub checkout_409: Latency,
    /// Checkout sent → job seen `succeeded`.
    pub end_to_end_succeeded: Latency,
    /// Checkout sent → job seen `failed`.
    pub end_to_end_failed: Latency,
}

/// CPU per completed checkout, in milliseconds.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct CpuPerCheckout {
    pub server_total_ms: f64,
    pub api_ms: f64,
    pub worker_ms: f64,
    pub postgres_ms: f64,
    pub postgres_this_db_ms: f64,
    pub redis_ms: f64,
    /// Server CPU per checkout request (accepted or refused).
    pub server_total_per_request_ms: f64,
}

/// Peak memory of the two server processes.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct ServerMemory {
    /// After the phase.
    pub api: Memory,
    pub worker: Memory,
    /// Just before the phase (after setup and warm-up), to tell what the phase added.
    pub api_before: Memory,
    pub worker_before: Memory,
}

/// A target from the issue and how this run did against it.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Check {
    pub name: String,
    pub target: String,
    pub value: String,
    pub pass: bool,
}

/// Everything about one scenario run (the JSON file).
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Summary {
    pub scenario: String,
    pub started_at: String,
    pub config: Config,
    pub setup_s: f64,
    pub warmup: Warmup,
    pub throughput: Throughput,
    pub latency_ms: Latencies,
    pub server_side_jobs: Jobs,
    pub integrity: Integrity,
    pub cpu_s: CpuUsage,
    pub cpu_per_checkout: CpuPerCheckout,
    pub postgres_work: PgWork,
    pub memory: ServerMemory,
    /// Answers other than 202/409 (status and body), first few.
    pub unexpected: Vec<String>,
    pub checks: Vec<Check>,
    pub timeline: Timeline,
}

fn per_s(n: f64, secs: f64) -> f64 {
    if secs > 0.0 { n / secs } else { 0.0 }
}

fn span(from: Instant, to: impl Iterator<Item = Instant>) -> f64 {
    to.max()
        .map_or(0.0, |t| t.saturating_duration_since(from).as_secs_f64())
}

/// Counts and rates from the outcomes.
pub(crate) fn throughput(phase: &Phase) -> Throughput {
    let o = &phase.outcomes;
    let Some(first) = o.iter().map(|o| o.sent).min() else {
        return Throughput::default();
    };
    let mut t = Throughput {
        checkout_requests: o.len(),
        http_requests: phase.requests,
        all_answered_s: span(first, o.iter().map(|o| o.answered)),
        drain_s: span(first, o.iter().map(|o| o.finished.unwrap_or(o.answered))),
        completed_window_s: span(
            first,
            o.iter()
                .filter(|o| o.final_status.as_deref() == Some("succeeded"))
                .filter_map(|o| o.finished),
        ),
        ..Throughput::default()
    };
    for x in o {
        match x.status {
            202 => t.accepted_202 += 1,
            409 => t.out_of_stock_409 += 1,
            s => *t.other_statuses.entry(s.to_string()).or_default() += 1,
        }
        if x.status != 202 {
            let code = x.error_code.as_deref().unwrap_or("-");
            *t.refusals
                .entry(format!("{}:{code}", x.status))
                .or_default() += 1;
        }
        match x.final_status.as_deref() {
            Some("succeeded") => t.completed += 1,
            Some(other) => {
                let key = match &x.final_error_code {
                    Some(code) => format!("{other}:{code}"),
                    None => other.to_owned(),
                };
                *t.not_completed.entry(key).or_default() += 1;
            }
            None => {}
        }
    }
    t.checkout_requests_per_s = per_s(o.len() as f64, t.all_answered_s);
    t.http_requests_per_s = per_s(phase.requests as f64, t.drain_s);
    t.completed_per_s = per_s(t.completed as f64, t.completed_window_s);
    let successes = o
        .iter()
        .filter(|o| o.final_status.as_deref() == Some("succeeded"))
        .filter_map(|o| o.finished);
    if let (Some(a), Some(b)) = (successes.clone().min(), successes.max()) {
        t.completed_steady_per_s =
            per_s(t.completed.saturating_sub(1) as f64, (b - a).as_secs_f64());
    }
    t
}

/// Client-side latency percentiles.
pub(crate) fn latencies(outcomes: &[Outcome]) -> Latencies {
    let api = |f: &dyn Fn(&Outcome) -> bool| {
        Latency::of(
            &mut outcomes
                .iter()
                .filter(|o| f(o))
                .map(|o| o.answered - o.sent)
                .collect::<Vec<_>>(),
        )
    };
    let e2e = |status: &str| {
        Latency::of(
            &mut outcomes
                .iter()
                .filter(|o| o.final_status.as_deref() == Some(status))
                .filter_map(|o| Some(o.finished? - o.sent))
                .collect::<Vec<_>>(),
        )
    };
    Latencies {
        checkout_all: api(&|_| true),
        checkout_202: api(&|o| o.status == 202),
        checkout_409: api(&|o| o.status == 409),
        end_to_end_succeeded: e2e("succeeded"),
        end_to_end_failed: e2e("failed"),
    }
}

/// CPU per completed checkout.
pub(crate) fn cpu_per_checkout(
    cpu: &CpuUsage,
    completed: usize,
    requests: usize,
) -> CpuPerCheckout {
    let per = |s: f64| {
        if completed == 0 {
            0.0
        } else {
            s * 1000.0 / completed as f64
        }
    };
    CpuPerCheckout {
        server_total_ms: per(cpu.server_total_s),
        api_ms: per(cpu.api_s),
        worker_ms: per(cpu.worker_s),
        postgres_ms: per(cpu.postgres_s),
        postgres_this_db_ms: per(cpu.postgres_this_db_s),
        redis_ms: per(cpu.redis_s),
        server_total_per_request_ms: if requests == 0 {
            0.0
        } else {
            cpu.server_total_s * 1000.0 / requests as f64
        },
    }
}

/// The first few answers that were neither 202 nor 409.
pub(crate) fn unexpected(outcomes: &[Outcome]) -> Vec<String> {
    let mut seen: Vec<String> = Vec::new();
    for o in outcomes {
        if let Some(body) = &o.unexpected_body {
            let line = format!("{} {body}", o.status);
            if !seen.contains(&line) && seen.len() < 10 {
                seen.push(line);
            }
        }
    }
    seen
}

/// Writes `s` to `dir/<scenario>-<timestamp>.json` and returns the path.
pub(crate) fn write(s: &Summary, dir: &Path, stamp: &str) -> anyhow::Result<PathBuf> {
    std::fs::create_dir_all(dir).with_context(|| format!("failed to create {}", dir.display()))?;
    let path = dir.join(format!("{}-{stamp}.json", s.scenario));
    let json = serde_json::to_string_pretty(s)?;
    std::fs::write(&path, json + "\n")
        .with_context(|| format!("failed to write {}", path.display()))?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::stats::ms;

    fn outcome(at: Instant, status: u16, api_ms: u64, final_ms: Option<(u64, &str)>) -> Outcome {
        Outcome {
            sent: at,
            answered: at + Duration::from_millis(api_ms),
            status,
            error_code: None,
            unexpected_body: None,
            job_id: None,
            finished: final_ms.map(|(m, _)| at + Duration::from_millis(m)),
            final_status: final_ms.map(|(_, s)| s.to_owned()),
            final_error_code: None,
        }
    }

    #[test]
    fn rates_use_the_span_from_the_first_request() {
        let t0 = Instant::now();
        let phase = Phase {
            outcomes: vec![
                outcome(t0, 202, 10, Some((100, "succeeded"))),
                outcome(t0, 202, 10, Some((200, "succeeded"))),
                outcome(t0, 409, 50, None),
                outcome(t0, 500, 20, None),
            ],
            requests: 6,
        };
        let t = throughput(&phase);
        assert_eq!((t.accepted_202, t.out_of_stock_409, t.completed), (2, 1, 2));
        assert_eq!(t.other_statuses.get("500"), Some(&1));
        assert!((t.completed_per_s - 10.0).abs() < 1e-6);
        assert!((t.drain_s - 0.2).abs() < 1e-6);
        assert!((t.all_answered_s - 0.05).abs() < 1e-6);
        let l = latencies(&phase.outcomes);
        assert_eq!(l.checkout_409.count, 1);
        assert_eq!(ms(&Duration::from_millis(3)), 3.0);
    }
}
