//! Command-line flags, parsed by hand (a handful of `--name value` pairs), with environment
//! fallbacks for the connection settings the servers also read.

use std::{path::PathBuf, time::Duration};

use anyhow::{Context, bail};

use crate::chaos::ChaosArgs;

pub(crate) const USAGE: &str = "\
bench: drives the real HTTP API with many concurrent buyers.

USAGE:
  bench [SCENARIO...] [FLAGS]       run scenarios (default: hot wide) against running servers
  bench reset-db [--database-url URL]   drop and create the database named in the URL
  bench wait-ready [--api URL] [--timeout-secs N]   wait until GET /health/ready answers 200
  bench clean-redis --redis-prefix bench-...   delete a bench run's Redis keys (queues, gate)
  bench chaos [--short] [CHAOS FLAGS]   the fault drill: its own PostgreSQL, Redis and fake
                                    Stripe, api + 2 workers + scheduler, faults under load

SCENARIOS:
  hot    many buyers race for few units of one listing (thundering herd at one instant)
  wide   many buyers, many listings with plenty of stock, a bounded number of requests in flight
  paid   wide catalogue; each buyer checks out, then a signed payment_intent.succeeded webhook
         pays the order (the bench plays Stripe); measured until every order is paid
  webhooks  signed webhooks at a fixed rate (open loop) for orders checked out beforehand
  images    a seller uploads a ~4.7 MB 12-megapixel JPEG (made by the bench) to listings: one at
            a time (upload latency, time until ready, worker processing time), then from
            several uploaders at once (images/s end to end); CPU per image and peak RSS

FLAGS (environment fallback in brackets):
  --api URL                 api base URL [BENCH_API] (http://127.0.0.1:8080)
  --database-url URL        the servers' database [DATABASE_URL] (postgres://postgres@127.0.0.1:5432/marketplace)
  --redis-url URL           [REDIS_URL] (redis://127.0.0.1:6379), to read the stock gate counters
  --redis-prefix P          the servers' REDIS_PREFIX [REDIS_PREFIX] (mp)
  --api-pid PID             api process (default: the only process named `api`)
  --worker-pid PID          worker process (default: the only process named `worker`)
  --hot-buyers N            (1000)
  --hot-units N             units of the hot listing (100)
  --hot-concurrency N       checkout requests in flight at once, 0 = all at once (0)
  --wide-buyers N           (3000)
  --wide-listings N         (500)
  --wide-stock N            units per wide listing (1000000)
  --wide-concurrency N      checkout requests in flight at once (64)
  --paid-buyers N           buyers of `paid` (3000)
  --paid-concurrency N      checkout + webhook requests in flight at once in `paid` (64)
  --webhook-rate N          webhooks per second in `webhooks` (1000)
  --webhook-secs N          how long `webhooks` sends (5); its orders = rate x secs
  --webhook-secret S        the api's STRIPE_WEBHOOK_SECRET, to sign events [BENCH_WEBHOOK_SECRET,
                            then STRIPE_WEBHOOK_SECRET]; paid/webhooks need it
  --image-count N           images uploaded one at a time in `images` (20)
  --image-parallel N        concurrent uploaders in the throughput phase of `images` (4)
  --image-parallel-count N  images uploaded in the throughput phase (--image-count)
  --worker-metrics URL      the worker's metrics (http://<METRICS_ADDR>/metrics), for the
                            worker's own processing time per image; bench/run sets it
  --setup-concurrency N     parallel requests while seeding (2 x cores)
  --job-timeout-secs N      give up waiting for a job after this long (60)
  --no-poll                 do not long-poll jobs over HTTP; watch them finish in Postgres instead
  --out-dir DIR             where JSON summaries go (bench-results)
  --label TEXT              free text stored in the JSON (e.g. the server settings)

CHAOS FLAGS (environment fallback in brackets):
  --short                   the CI version: 30 s of load, faults compressed, 60 s to settle
  --chaos-secs N            load duration [BENCH_CHAOS_SECS] (60; 30 with --short)
  --settle-secs N           how long the system may take to settle afterwards
                            [BENCH_CHAOS_SETTLE_SECS] (120; 60 with --short)
  --clients N               concurrent clients [BENCH_CHAOS_CLIENTS] (16)
  --bin-dir DIR             where api, worker and scheduler are (next to this binary)
  --work-dir DIR            scratch directory for the cluster (a new one under /tmp)
";

/// Which load shape to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scenario {
    /// Many buyers, one listing with few units.
    Hot,
    /// Many buyers spread over many well-stocked listings.
    Wide,
    /// Like `wide`, and every order is then paid through a signed webhook.
    Paid,
    /// Signed webhooks at a fixed rate for orders prepared beforehand.
    Webhooks,
    /// Listing pictures: uploads one at a time, then from several uploaders.
    Images,
}

impl Scenario {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Scenario::Hot => "hot",
            Scenario::Wide => "wide",
            Scenario::Paid => "paid",
            Scenario::Webhooks => "webhooks",
            Scenario::Images => "images",
        }
    }
}

/// What to run and against what.
#[derive(Debug, Clone)]
pub(crate) struct RunArgs {
    pub api: String,
    pub database_url: String,
    pub redis_url: String,
    pub redis_prefix: String,
    pub api_pid: Option<u32>,
    pub worker_pid: Option<u32>,
    pub scenarios: Vec<Scenario>,
    pub hot_buyers: usize,
    pub hot_units: i64,
    pub hot_concurrency: usize,
    pub wide_buyers: usize,
    pub wide_listings: usize,
    pub wide_stock: i64,
    pub wide_concurrency: usize,
    pub paid_buyers: usize,
    pub paid_concurrency: usize,
    pub webhook_rate: u32,
    pub webhook_secs: u32,
    pub webhook_secret: Option<String>,
    pub image_count: usize,
    pub image_parallel: usize,
    /// `None`: as many as `image_count`.
    pub image_parallel_count: Option<usize>,
    pub worker_metrics: Option<String>,
    pub setup_concurrency: usize,
    pub job_timeout: Duration,
    pub poll: bool,
    pub out_dir: PathBuf,
    pub label: Option<String>,
}

/// The sub-command.
#[derive(Debug)]
pub(crate) enum Command {
    Run(Box<RunArgs>),
    ResetDb { database_url: String },
    WaitReady { api: String, timeout: Duration },
    CleanRedis { redis_url: String, prefix: String },
    Chaos(Box<ChaosArgs>),
    Help,
}

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name)
        .ok()
        .filter(|v| !v.trim().is_empty())
        .unwrap_or_else(|| default.to_owned())
}

fn number<T: std::str::FromStr>(flag: &str, value: &str) -> anyhow::Result<T>
where
    T::Err: std::error::Error + Send + Sync + 'static,
{
    value
        .trim()
        .replace('_', "")
        .parse()
        .with_context(|| format!("{flag}: {value:?} is not a valid number"))
}

/// Parses `args` (without the program name).
pub(crate) fn parse(args: impl IntoIterator<Item = String>) -> anyhow::Result<Command> {
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let mut run = RunArgs {
        api: env_or("BENCH_API", "http://127.0.0.1:8080"),
        database_url: env_or(
            "DATABASE_URL",
            "postgres://postgres@127.0.0.1:5432/marketplace",
        ),
        redis_url: env_or("REDIS_URL", "redis://127.0.0.1:6379"),
        redis_prefix: env_or("REDIS_PREFIX", "mp"),
        api_pid: None,
        worker_pid: None,
        scenarios: Vec::new(),
        hot_buyers: 1000,
        hot_units: 100,
        hot_concurrency: 0,
        wide_buyers: 3000,
        wide_listings: 500,
        wide_stock: 1_000_000,
        wide_concurrency: 64,
        paid_buyers: 3000,
        paid_concurrency: 64,
        webhook_rate: 1000,
        webhook_secs: 5,
        webhook_secret: ["BENCH_WEBHOOK_SECRET", "STRIPE_WEBHOOK_SECRET"]
            .iter()
            .find_map(|k| std::env::var(k).ok().filter(|v| !v.trim().is_empty())),
        image_count: 20,
        image_parallel: 4,
        image_parallel_count: None,
        worker_metrics: None,
        setup_concurrency: 2 * cores,
        job_timeout: Duration::from_secs(60),
        poll: true,
        out_dir: PathBuf::from("bench-results"),
        label: None,
    };
    let mut sub: Option<String> = None;
    let mut timeout = Duration::from_secs(30);
    let env_secs = |name: &str| -> anyhow::Result<Option<u64>> {
        match std::env::var(name).ok().filter(|v| !v.trim().is_empty()) {
            Some(v) => number(name, &v).map(Some),
            None => Ok(None),
        }
    };
    let mut short = false;
    let mut chaos_secs = env_secs("BENCH_CHAOS_SECS")?;
    let mut settle_secs = env_secs("BENCH_CHAOS_SETTLE_SECS")?;
    let mut clients: usize = env_secs("BENCH_CHAOS_CLIENTS")?.map_or(16, |n| n as usize);
    let mut bin_dir: Option<PathBuf> = None;
    let mut work_dir: Option<PathBuf> = None;
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_owned(), Some(v.to_owned())),
            _ => (arg.clone(), None),
        };
        let mut value = || -> anyhow::Result<String> {
            match inline.clone() {
                Some(v) => Ok(v),
                None => args
                    .next()
                    .with_context(|| format!("{flag} needs a value (see --help)")),
            }
        };
        match flag.as_str() {
            "-h" | "--help" => return Ok(Command::Help),
            "--api" => run.api = value()?.trim_end_matches('/').to_owned(),
            "--database-url" => run.database_url = value()?,
            "--redis-url" => run.redis_url = value()?,
            "--redis-prefix" => run.redis_prefix = value()?,
            "--api-pid" => run.api_pid = Some(number(&flag, &value()?)?),
            "--worker-pid" => run.worker_pid = Some(number(&flag, &value()?)?),
            "--hot-buyers" => run.hot_buyers = number(&flag, &value()?)?,
            "--hot-units" => run.hot_units = number(&flag, &value()?)?,
            "--hot-concurrency" => run.hot_concurrency = number(&flag, &value()?)?,
            "--wide-buyers" => run.wide_buyers = number(&flag, &value()?)?,
            "--wide-listings" => run.wide_listings = number(&flag, &value()?)?,
            "--wide-stock" => run.wide_stock = number(&flag, &value()?)?,
            "--wide-concurrency" => run.wide_concurrency = number(&flag, &value()?)?,
            "--paid-buyers" => run.paid_buyers = number(&flag, &value()?)?,
            "--paid-concurrency" => run.paid_concurrency = number(&flag, &value()?)?,
            "--webhook-rate" => run.webhook_rate = number(&flag, &value()?)?,
            "--webhook-secs" => run.webhook_secs = number(&flag, &value()?)?,
            "--webhook-secret" => run.webhook_secret = Some(value()?),
            "--image-count" => run.image_count = number(&flag, &value()?)?,
            "--image-parallel" => run.image_parallel = number(&flag, &value()?)?,
            "--image-parallel-count" => {
                run.image_parallel_count = Some(number(&flag, &value()?)?);
            }
            "--worker-metrics" => run.worker_metrics = Some(value()?),
            "--setup-concurrency" => run.setup_concurrency = number(&flag, &value()?)?,
            "--job-timeout-secs" => {
                run.job_timeout = Duration::from_secs(number(&flag, &value()?)?);
            }
            "--timeout-secs" => timeout = Duration::from_secs(number(&flag, &value()?)?),
            "--no-poll" => run.poll = false,
            "--out-dir" => run.out_dir = PathBuf::from(value()?),
            "--label" => run.label = Some(value()?),
            "--short" => short = true,
            "--chaos-secs" => chaos_secs = Some(number(&flag, &value()?)?),
            "--settle-secs" => settle_secs = Some(number(&flag, &value()?)?),
            "--clients" => clients = number(&flag, &value()?)?,
            "--bin-dir" => bin_dir = Some(PathBuf::from(value()?)),
            "--work-dir" => work_dir = Some(PathBuf::from(value()?)),
            "hot" => run.scenarios.push(Scenario::Hot),
            "wide" => run.scenarios.push(Scenario::Wide),
            "paid" => run.scenarios.push(Scenario::Paid),
            "webhooks" => run.scenarios.push(Scenario::Webhooks),
            "images" => run.scenarios.push(Scenario::Images),
            "reset-db" | "wait-ready" | "clean-redis" | "chaos" if sub.is_none() => {
                sub = Some(flag)
            }
            other => bail!("unknown argument {other:?} (see --help)"),
        }
    }
    if run.hot_buyers == 0 || run.wide_buyers == 0 || run.wide_listings == 0 {
        bail!("--hot-buyers, --wide-buyers and --wide-listings must be at least 1");
    }
    if run.setup_concurrency == 0 || run.wide_concurrency == 0 || run.paid_concurrency == 0 {
        bail!("--setup-concurrency, --wide-concurrency and --paid-concurrency must be at least 1");
    }
    if run.paid_buyers == 0 || run.webhook_rate == 0 || run.webhook_secs == 0 {
        bail!("--paid-buyers, --webhook-rate and --webhook-secs must be at least 1");
    }
    if run.image_count == 0 || run.image_parallel == 0 || run.image_parallel_count == Some(0) {
        bail!("--image-count, --image-parallel and --image-parallel-count must be at least 1");
    }
    let needs_secret = run
        .scenarios
        .iter()
        .any(|s| matches!(s, Scenario::Paid | Scenario::Webhooks));
    if needs_secret && run.webhook_secret.is_none() {
        bail!(
            "paid and webhooks sign events with the api's webhook secret: pass --webhook-secret \
             or set BENCH_WEBHOOK_SECRET (bench/run does)"
        );
    }
    if !(1..=1_000_000).contains(&run.hot_units) || !(1..=1_000_000).contains(&run.wide_stock) {
        bail!("--hot-units and --wide-stock must be between 1 and 1000000 (the API's limit)");
    }
    if sub.as_deref() == Some("chaos") {
        if !run.scenarios.is_empty() {
            bail!("chaos runs alone: its servers are its own");
        }
        let load = chaos_secs.unwrap_or(if short { 30 } else { 60 });
        let settle = settle_secs.unwrap_or(if short { 60 } else { 120 });
        if load < 12 || clients == 0 {
            bail!("chaos needs at least 12 s of load (--chaos-secs) and one client");
        }
        return Ok(Command::Chaos(Box::new(ChaosArgs {
            short,
            load: Duration::from_secs(load),
            settle: Duration::from_secs(settle),
            clients,
            bin_dir,
            work_dir,
            out_dir: run.out_dir,
            label: run.label,
            setup_concurrency: run.setup_concurrency,
        })));
    }
    match sub.as_deref() {
        Some("reset-db") => Ok(Command::ResetDb {
            database_url: run.database_url,
        }),
        Some("wait-ready") => Ok(Command::WaitReady {
            api: run.api,
            timeout,
        }),
        Some("clean-redis") => {
            // Only a prefix that `bench/run` made up: never another deployment's keys.
            if !run.redis_prefix.starts_with("bench-") || run.redis_prefix.len() < 10 {
                bail!("clean-redis only deletes prefixes like bench-<random>");
            }
            Ok(Command::CleanRedis {
                redis_url: run.redis_url,
                prefix: run.redis_prefix,
            })
        }
        _ => {
            if run.scenarios.is_empty() {
                run.scenarios = vec![Scenario::Hot, Scenario::Wide];
            }
            Ok(Command::Run(Box::new(run)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_strs(args: &[&str]) -> anyhow::Result<Command> {
        parse(args.iter().map(|s| s.to_string()))
    }

    #[test]
    fn flags_take_separate_or_inline_values() {
        let Command::Run(run) = parse_strs(&[
            "hot",
            "--hot-buyers",
            "50",
            "--wide-stock=1_000",
            "--api",
            "http://x:1/",
        ])
        .unwrap() else {
            panic!("expected a run");
        };
        assert_eq!(run.scenarios, vec![Scenario::Hot]);
        assert_eq!(run.hot_buyers, 50);
        assert_eq!(run.wide_stock, 1000);
        assert_eq!(run.api, "http://x:1");
    }

    #[test]
    fn no_scenario_means_both_and_unknown_flags_are_refused() {
        let Command::Run(run) = parse_strs(&[]).unwrap() else {
            panic!("expected a run");
        };
        assert_eq!(run.scenarios, vec![Scenario::Hot, Scenario::Wide]);
        assert!(parse_strs(&["--nope"]).is_err());
        assert!(parse_strs(&["--hot-buyers"]).is_err());
    }

    #[test]
    fn paid_and_webhooks_take_their_own_flags() {
        let Command::Run(run) = parse_strs(&[
            "paid",
            "webhooks",
            "--paid-buyers=200",
            "--webhook-rate",
            "500",
            "--webhook-secret",
            "whsec_x",
        ])
        .unwrap() else {
            panic!("expected a run");
        };
        assert_eq!(run.scenarios, vec![Scenario::Paid, Scenario::Webhooks]);
        assert_eq!((run.paid_buyers, run.webhook_rate), (200, 500));
        assert_eq!(run.webhook_secret.as_deref(), Some("whsec_x"));
    }

    #[test]
    fn images_takes_its_own_flags() {
        let Command::Run(run) = parse_strs(&[
            "images",
            "--image-count=5",
            "--image-parallel",
            "2",
            "--worker-metrics",
            "http://127.0.0.1:18081/metrics",
        ])
        .unwrap() else {
            panic!("expected a run");
        };
        assert_eq!(run.scenarios, vec![Scenario::Images]);
        assert_eq!((run.image_count, run.image_parallel), (5, 2));
        assert_eq!(run.image_parallel_count, None);
        assert_eq!(
            run.worker_metrics.as_deref(),
            Some("http://127.0.0.1:18081/metrics")
        );
        assert!(parse_strs(&["images", "--image-parallel", "0"]).is_err());
    }

    #[test]
    fn chaos_takes_its_own_flags_and_runs_alone() {
        let Command::Chaos(c) = parse_strs(&["chaos", "--short", "--clients=4"]).unwrap() else {
            panic!("expected chaos");
        };
        assert!(c.short);
        assert_eq!(c.clients, 4);
        assert_eq!(c.load, Duration::from_secs(30));
        assert!(parse_strs(&["chaos", "hot"]).is_err());
        assert!(parse_strs(&["chaos", "--chaos-secs", "5"]).is_err());
    }
}
