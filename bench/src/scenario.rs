//! One scenario end to end: seed, warm up, measure, verify, report.

use std::{
    collections::BTreeMap,
    path::PathBuf,
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::bail;

use chrono::Utc;
use rand::Rng;
use sqlx::PgPool;
use uuid::Uuid;

use crate::{
    args::{RunArgs, Scenario},
    client::Api,
    load::{self, Load},
    output,
    procstat::{self, Targets},
    report::{self, Config, ServerMemory, Summary, Warmup},
    setup::{self, Plan},
    timeline, verify,
};

/// Server settings worth recording next to the figures, read from the bench's own environment
/// (`bench/run` exports the values it starts the servers with).
const SERVER_ENV: &[&str] = &[
    "WORKER_CONCURRENCY",
    "WORKER_POLL_INTERVAL_MS",
    "DATABASE_MAX_CONNECTIONS",
    "REDIS_PREFIX",
];

/// Warm-up checkouts before each measured phase.
const CANARIES: usize = 16;

fn plan(scenario: Scenario, args: &RunArgs) -> Plan {
    let tag = format!(
        "{}{:06x}",
        scenario.name(),
        rand::random::<u32>() & 0xff_ffff
    );
    match scenario {
        Scenario::Hot => Plan {
            tag,
            sellers: 1,
            listings: vec![(args.hot_units, 4_999)],
            buyers: args.hot_buyers,
            canaries: CANARIES,
            cart: Box::new(|_| 0),
        },
        Scenario::Wide => {
            let n = args.wide_listings;
            Plan {
                tag,
                sellers: n.div_ceil(50),
                listings: (0..n)
                    .map(|_| (args.wide_stock, rand::thread_rng().gen_range(100..10_000)))
                    .collect(),
                buyers: args.wide_buyers,
                canaries: CANARIES,
                cart: Box::new(move |_| rand::thread_rng().gen_range(0..n)),
            }
        }
    }
}

fn database_name(url: &str) -> String {
    let path = url.rsplit('/').next().unwrap_or_default();
    path.split('?').next().unwrap_or_default().to_owned()
}

/// Runs `scenario` and returns the path of its JSON summary.
pub(crate) async fn run(
    scenario: Scenario,
    args: &RunArgs,
    pool: &PgPool,
) -> anyhow::Result<PathBuf> {
    let targets = Targets {
        api: procstat::find_pid("api", args.api_pid)?,
        worker: procstat::find_pid("worker", args.worker_pid)?,
        database: database_name(&args.database_url),
    };
    let plan = plan(scenario, args);
    let concurrency = match scenario {
        Scenario::Hot => (args.hot_concurrency > 0).then_some(args.hot_concurrency),
        Scenario::Wide => Some(args.wide_concurrency),
    };
    let api = Arc::new(Api::new(&args.api, plan.buyers + 64)?);
    let started_at = Utc::now();
    eprintln!("{}: setting up {} buyers", scenario.name(), plan.buyers);
    let setup_started = Instant::now();
    let seeded = setup::seed(&api, pool, &plan, args.setup_concurrency).await?;
    load::warm_up(&api, concurrency.unwrap_or(plan.buyers)).await?;
    let warmup = warm_up_worker(&api, pool, &seeded.canaries).await?;
    let setup_s = setup_started.elapsed().as_secs_f64();

    eprintln!("{}: measuring", scenario.name());
    let hz = procstat::clock_ticks_per_sec();
    let api_before = procstat::memory(targets.api)?;
    let worker_before = procstat::memory(targets.worker)?;
    let before = procstat::sample(&targets);
    let load = Load {
        concurrency,
        poll: args.poll,
        job_timeout: args.job_timeout,
    };
    let phase = load::run(&api, pool, &seeded.buyers, &load).await?;
    let after = procstat::sample(&targets);
    let cpu = procstat::usage(&before, &after, hz);
    let memory = ServerMemory {
        api: procstat::memory(targets.api)?,
        worker: procstat::memory(targets.worker)?,
        api_before,
        worker_before,
    };

    let buyer_ids: Vec<Uuid> = seeded.buyers.iter().map(|b| b.id).collect();
    let integrity = verify::integrity(
        pool,
        &args.redis_url,
        &args.redis_prefix,
        &seeded.listings,
        &buyer_ids,
    )
    .await?;
    let jobs = verify::jobs(pool, &buyer_ids).await?;
    let throughput = report::throughput(&phase);
    let cpu_per_checkout =
        report::cpu_per_checkout(&cpu, throughput.completed, throughput.checkout_requests);
    let server_env: BTreeMap<String, String> = SERVER_ENV
        .iter()
        .filter_map(|k| Some((k.to_string(), std::env::var(k).ok()?)))
        .collect();
    let mut summary = Summary {
        scenario: scenario.name().into(),
        started_at: started_at.to_rfc3339(),
        config: Config {
            api: args.api.clone(),
            buyers: plan.buyers,
            listings: plan.listings.len(),
            units_per_listing: plan.listings.first().map_or(0, |l| l.0),
            concurrency,
            poll_over_http: args.poll,
            api_pid: targets.api,
            worker_pid: targets.worker,
            server_env,
            label: args.label.clone(),
        },
        setup_s,
        warmup,
        latency_ms: report::latencies(&phase.outcomes),
        unexpected: report::unexpected(&phase.outcomes),
        throughput,
        server_side_jobs: jobs,
        integrity,
        cpu_s: cpu,
        cpu_per_checkout,
        memory,
        checks: Vec::new(),
        timeline: timeline::of(&phase.outcomes),
    };
    summary.checks = output::checks(&summary);
    output::print(&summary);
    let stamp = started_at.format("%Y%m%dT%H%M%SZ").to_string();
    report::write(&summary, &args.out_dir, &stamp)
}

/// Runs the canaries' checkouts and waits for them, so the measured phase does not include a
/// cold worker (a freshly started worker may not poll its queue for a few seconds).
async fn warm_up_worker(
    api: &Arc<Api>,
    pool: &PgPool,
    canaries: &[setup::Buyer],
) -> anyhow::Result<Warmup> {
    let started = Instant::now();
    let load = Load {
        concurrency: None,
        poll: true,
        job_timeout: Duration::from_secs(60),
    };
    let phase = load::run(api, pool, canaries, &load).await?;
    let t = report::throughput(&phase);
    let warmup = Warmup {
        checkouts: canaries.len(),
        succeeded: t.completed,
        wait_s: started.elapsed().as_secs_f64(),
    };
    eprintln!(
        "  warm-up: {}/{} checkouts succeeded in {:.2} s",
        warmup.succeeded, warmup.checkouts, warmup.wait_s
    );
    if warmup.succeeded != warmup.checkouts {
        bail!(
            "warm-up checkouts did not all succeed: {:?} {:?}",
            t.refusals,
            t.not_completed
        );
    }
    // Let the last completions' trailing work (events, pool returns) settle before sampling.
    tokio::time::sleep(Duration::from_millis(200)).await;
    Ok(warmup)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_name_is_the_last_path_segment() {
        assert_eq!(
            database_name("postgres://postgres@127.0.0.1:5432/marketplace_bench?sslmode=disable"),
            "marketplace_bench"
        );
    }
}
