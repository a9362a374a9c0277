//! One scenario end to end: seed, warm up, measure, verify, report.

use std::{
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
    load::{self, Load, Phase},
    output,
    procstat::{self, CpuUsage, Targets},
    report::{self, Config, ServerMemory, Summary, Warmup},
    setup::{self, Plan},
    timeline,
    verify::{self, PgCounters},
};

/// Server settings worth recording next to the figures, read from the bench's own environment
/// (`bench/run` exports the values it starts the servers with).
pub(crate) const SERVER_ENV: &[&str] = &[
    "WORKER_CONCURRENCY",
    "WORKER_POLL_INTERVAL_MS",
    "DATABASE_MAX_CONNECTIONS",
    "REDIS_PREFIX",
    "PLATFORM_FEE_BPS",
];

/// Warm-up checkouts before each measured phase.
pub(crate) const CANARIES: usize = 16;

pub(crate) fn plan(scenario: Scenario, args: &RunArgs) -> Plan {
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
        Scenario::Wide | Scenario::Paid | Scenario::Webhooks => {
            let n = args.wide_listings;
            Plan {
                tag,
                sellers: n.div_ceil(50),
                listings: (0..n)
                    .map(|_| (args.wide_stock, rand::thread_rng().gen_range(100..10_000)))
                    .collect(),
                buyers: match scenario {
                    Scenario::Paid => args.paid_buyers,
                    Scenario::Webhooks => (args.webhook_rate * args.webhook_secs) as usize,
                    _ => args.wide_buyers,
                },
                canaries: CANARIES,
                cart: Box::new(move |_| rand::thread_rng().gen_range(0..n)),
            }
        }
        // No buyers: `images` makes its own seller and listings (images.rs).
        Scenario::Images => Plan {
            tag,
            sellers: 1,
            listings: Vec::new(),
            buyers: 0,
            canaries: 0,
            cart: Box::new(|_| 0),
        },
    }
}

pub(crate) fn database_name(url: &str) -> String {
    let path = url.rsplit('/').next().unwrap_or_default();
    path.split('?').next().unwrap_or_default().to_owned()
}

/// What the measured phase produced.
struct Measured {
    phase: Phase,
    cpu: CpuUsage,
    memory: ServerMemory,
    pg_before: PgCounters,
    pg_after: PgCounters,
}

/// Runs `scenario` and returns the path of its JSON summary.
pub(crate) async fn run(
    scenario: Scenario,
    args: &RunArgs,
    pool: &PgPool,
) -> anyhow::Result<PathBuf> {
    match scenario {
        Scenario::Paid | Scenario::Webhooks => return crate::paid::run(scenario, args, pool).await,
        Scenario::Images => return crate::images::run(args, pool).await,
        Scenario::Hot | Scenario::Wide => {}
    }
    let targets = Targets {
        api: procstat::find_pid("api", args.api_pid)?,
        worker: procstat::find_pid("worker", args.worker_pid)?,
        database: database_name(&args.database_url),
    };
    let plan = plan(scenario, args);
    let load = Load {
        concurrency: match scenario {
            Scenario::Hot => (args.hot_concurrency > 0).then_some(args.hot_concurrency),
            Scenario::Wide => Some(args.wide_concurrency),
            Scenario::Paid | Scenario::Webhooks | Scenario::Images => Some(args.paid_concurrency),
        },
        poll: args.poll,
        job_timeout: args.job_timeout,
    };
    let api = Arc::new(Api::new(&args.api, plan.buyers + 64)?);
    let started_at = Utc::now();
    eprintln!("{}: setting up {} buyers", scenario.name(), plan.buyers);
    let setup_started = Instant::now();
    let seeded = setup::seed(&api, pool, &plan, args.setup_concurrency).await?;
    load::warm_up(&api, load.concurrency.unwrap_or(plan.buyers)).await?;
    let warmup = warm_up_worker(&api, pool, &seeded.canaries).await?;
    let setup_s = setup_started.elapsed().as_secs_f64();

    eprintln!("{}: measuring", scenario.name());
    let m = measure(&api, pool, &targets, &seeded.buyers, &load).await?;

    let buyer_ids: Vec<Uuid> = seeded.buyers.iter().map(|b| b.id).collect();
    let integrity = verify::integrity(
        pool,
        &args.redis_url,
        &args.redis_prefix,
        &seeded.listings,
        &buyer_ids,
    )
    .await?;
    let throughput = report::throughput(&m.phase);
    let mut summary = Summary {
        scenario: scenario.name().into(),
        started_at: started_at.to_rfc3339(),
        config: config(args, &plan, &targets, &load),
        setup_s,
        warmup,
        latency_ms: report::latencies(&m.phase.outcomes),
        unexpected: report::unexpected(&m.phase.outcomes),
        server_side_jobs: verify::jobs(pool, &buyer_ids).await?,
        integrity,
        cpu_per_checkout: report::cpu_per_checkout(
            &m.cpu,
            throughput.completed,
            throughput.checkout_requests,
        ),
        postgres_work: verify::pg_work(m.pg_before, m.pg_after, throughput.completed),
        throughput,
        cpu_s: m.cpu,
        memory: m.memory,
        checks: Vec::new(),
        timeline: timeline::of(&m.phase.outcomes),
    };
    summary.checks = output::checks(&summary);
    output::print(&summary);
    // Milliseconds: two quick scenarios can start within the same second.
    let stamp = started_at.format("%Y%m%dT%H%M%S%.3fZ").to_string();
    report::write(&summary, &args.out_dir, &stamp)
}

/// The measured phase with the process and Postgres readings around it.
async fn measure(
    api: &Arc<Api>,
    pool: &PgPool,
    targets: &Targets,
    buyers: &[setup::Buyer],
    load: &Load,
) -> anyhow::Result<Measured> {
    let hz = procstat::clock_ticks_per_sec();
    let api_before = procstat::memory(targets.api)?;
    let worker_before = procstat::memory(targets.worker)?;
    let pg_before = verify::pg_counters(pool).await?;
    let before = procstat::sample(targets);
    let phase = load::run(api, pool, buyers, load).await?;
    let after = procstat::sample(targets);
    let pg_after = verify::pg_counters(pool).await?;
    Ok(Measured {
        phase,
        cpu: procstat::usage(&before, &after, hz),
        memory: ServerMemory {
            api: procstat::memory(targets.api)?,
            worker: procstat::memory(targets.worker)?,
            api_before,
            worker_before,
        },
        pg_before,
        pg_after,
    })
}

pub(crate) fn config(args: &RunArgs, plan: &Plan, targets: &Targets, load: &Load) -> Config {
    Config {
        api: args.api.clone(),
        buyers: plan.buyers,
        listings: plan.listings.len(),
        units_per_listing: plan.listings.first().map_or(0, |l| l.0),
        concurrency: load.concurrency,
        poll_over_http: load.poll,
        api_pid: targets.api,
        worker_pid: targets.worker,
        server_env: SERVER_ENV
            .iter()
            .filter_map(|k| Some((k.to_string(), std::env::var(k).ok()?)))
            .collect(),
        label: args.label.clone(),
    }
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
