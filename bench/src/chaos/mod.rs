//! `chaos`: a fault drill under load that checks every invariant.
//!
//! The drill starts its own PostgreSQL cluster and `redis-server` (so its faults touch nobody
//! else), a fake Stripe in this process, and the real api, two worker replicas and the
//! scheduler in Stripe payment mode. Clients buy for the length of the load while a worker is
//! killed, Redis is flushed and restarted, PostgreSQL and the api are restarted; then the drill
//! waits for the system to settle and checks, in PostgreSQL and at the fake Stripe, that nothing
//! was lost, doubled or oversold, and how long each fault took to recover from.

mod checks;
mod faults;
mod load;
mod services;
mod stripe_fake;
mod timeline;

use std::{
    collections::HashMap,
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::{Context, anyhow, bail};
use chrono::Utc;
use rand::Rng;
use serde::Serialize;
use sqlx::{PgPool, postgres::PgPoolOptions};
use uuid::Uuid;

use self::{
    checks::{ClientFigures, Database, ReadinessFlip, Recovery, StripeFigures, Window},
    faults::{Fault, Kind},
    load::{Ctx, Flow, Requests},
    services::{Fleet, Postgres, Redis},
    stripe_fake::FakeStripe,
    timeline::{Event, Timeline},
};
use crate::{
    client::Api,
    report::Check,
    setup::{self, Plan},
};

/// What `bench chaos` was asked for.
#[derive(Debug, Clone)]
pub(crate) struct ChaosArgs {
    pub short: bool,
    /// How long the clients buy (the faults are spread over it).
    pub load: Duration,
    /// How long after the load the system may take to settle.
    pub settle: Duration,
    pub clients: usize,
    /// Where `api`, `worker` and `scheduler` are (default: next to this binary).
    pub bin_dir: Option<PathBuf>,
    /// Scratch directory for the cluster, Redis and pid files (default: a new one in /tmp).
    pub work_dir: Option<PathBuf>,
    pub out_dir: PathBuf,
    pub label: Option<String>,
    pub setup_concurrency: usize,
}

/// Buyers per client: they take turns, so the per-buyer limits (one checkout at a time,
/// unpaid orders) rarely make a client wait.
const BUYERS_PER_CLIENT: usize = 4;
/// Listings that never run out (1,000,000 units each) and the two that do (fewer units in the
/// short version, whose debug build sells less, so they still run out).
const PLENTIFUL_LISTINGS: usize = 20;
const SCARCE_STOCK: [i64; 2] = [50, 150];
const SCARCE_STOCK_SHORT: [i64; 2] = [15, 40];
/// The platform fee the servers run with (the default, set explicitly).
const FEE_BPS: i64 = 1000;

/// The drill's JSON summary.
#[derive(Debug, Serialize)]
struct Summary {
    scenario: &'static str,
    started_at: String,
    pass: bool,
    config: SummaryConfig,
    timeline: Vec<Event>,
    faults: Vec<Fault>,
    recovery: Vec<Recovery>,
    windows: Vec<Window>,
    readiness: ReadinessFlip,
    settled_after_load_s: Option<f64>,
    clients: ClientFigures,
    database: Database,
    stripe: StripeFigures,
    server_exits: Vec<(String, String)>,
    log_lines: Vec<LogLines>,
    checks: Vec<Check>,
}

#[derive(Debug, Serialize)]
struct SummaryConfig {
    short: bool,
    load_s: f64,
    settle_limit_s: f64,
    recovery_bound_s: f64,
    clients: usize,
    buyers: usize,
    listings: usize,
    scarce_stock: Vec<i64>,
    worker_replicas: usize,
    binaries: String,
    server_env: Vec<(String, String)>,
    label: Option<String>,
}

#[derive(Debug, Serialize)]
struct LogLines {
    log: String,
    error: usize,
    warn: usize,
}

/// What the drill started, for the cleanup whatever happens.
struct Started {
    work: PathBuf,
    remove_work: bool,
    out: PathBuf,
    fleet: Fleet,
    redis: Arc<tokio::sync::Mutex<Redis>>,
    postgres: Mutex<Option<Arc<Postgres>>>,
    stop: Arc<AtomicBool>,
}

impl Started {
    async fn cleanup(&self) {
        self.stop.store(true, Ordering::Relaxed);
        for (name, status) in self.fleet.stop_all(Duration::from_secs(20)).await {
            eprintln!("chaos: {name} stopped: {status}");
        }
        self.redis.lock().await.stop().await;
        let pg = self.postgres.lock().expect("postgres lock").clone();
        if let Some(pg) = pg {
            let log = pg.log_path().to_owned();
            let _ = tokio::task::spawn_blocking(move || pg.stop()).await;
            let _ = std::fs::copy(&log, self.out.join("chaos-postgres.log"));
        }
        if self.remove_work
            && let Err(e) = std::fs::remove_dir_all(&self.work)
        {
            eprintln!("chaos: could not remove {}: {e}", self.work.display());
        }
    }
}

/// Runs the drill; `Ok(false)` when a check failed.
pub(crate) async fn run(args: ChaosArgs) -> anyhow::Result<bool> {
    std::fs::create_dir_all(&args.out_dir)
        .with_context(|| format!("failed to create {}", args.out_dir.display()))?;
    let (work, remove_work) = match &args.work_dir {
        Some(dir) => (dir.clone(), false),
        None => (
            std::env::temp_dir().join(format!("bench-chaos-{:08x}", rand::random::<u32>())),
            true,
        ),
    };
    std::fs::create_dir_all(&work)?;
    // The cluster runs as `postgres` when we are root: it must reach its directory.
    std::fs::set_permissions(&work, std::fs::Permissions::from_mode(0o755))?;
    let timeline = Timeline::new();
    let redis_port = services::free_port(56379)?;
    let started = Started {
        fleet: Fleet::new(&work, timeline.clone()),
        redis: Arc::new(tokio::sync::Mutex::new(Redis::new(
            &work,
            &args.out_dir,
            redis_port,
        ))),
        postgres: Mutex::new(None),
        stop: Arc::new(AtomicBool::new(false)),
        work,
        remove_work,
        out: args.out_dir.clone(),
    };
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let outcome = tokio::select! {
        r = drill(&args, &started, timeline) => r,
        _ = tokio::signal::ctrl_c() => Err(anyhow!("interrupted (SIGINT)")),
        _ = terminate.recv() => Err(anyhow!("stopped (SIGTERM)")),
    };
    started.cleanup().await;
    outcome
}

fn bin_dir(args: &ChaosArgs) -> anyhow::Result<PathBuf> {
    let dir = match &args.bin_dir {
        Some(d) => d.clone(),
        None => std::env::current_exe()?
            .parent()
            .context("the bench binary has no directory")?
            .to_owned(),
    };
    for b in ["api", "worker", "scheduler"] {
        if !dir.join(b).is_file() {
            bail!(
                "{} not found (build it, or pass --bin-dir)",
                dir.join(b).display()
            );
        }
    }
    Ok(dir)
}

/// The servers' environment: the drill's services, Stripe mode against the fake, and limits
/// that keep the load flowing (every buyer is at 127.0.0.1, orders must not expire mid-drill).
/// Other variables of the configuration (WORKER_CONCURRENCY, SCHEDULE_*, ...) pass through.
fn server_env(
    pg: &Postgres,
    redis: &Redis,
    api_addr: &str,
    stripe_base: &str,
    webhook_secret: &str,
) -> Vec<(String, String)> {
    let log = std::env::var("BENCH_RUST_LOG").unwrap_or_else(|_| "warn".into());
    [
        ("DATABASE_URL", pg.url("marketplace_chaos")),
        ("REDIS_URL", redis.url()),
        ("REDIS_PREFIX", "chaos".into()),
        ("API_ADDR", api_addr.into()),
        ("APP_ENV", "dev".into()),
        ("LOG_FORMAT", "json".into()),
        ("RUST_LOG", log),
        ("RUN_MIGRATIONS", "false".into()),
        // The cluster is new: `api migrate` creates the database.
        ("DATABASE_CREATE", "true".into()),
        ("WEB_DIR", "off".into()),
        ("GEOCODER", "none".into()),
        ("PAYMENTS", "stripe".into()),
        ("STRIPE_SECRET_KEY", "sk_test_chaos".into()),
        ("STRIPE_WEBHOOK_SECRET", webhook_secret.into()),
        ("STRIPE_API_BASE", stripe_base.into()),
        ("PLATFORM_FEE_BPS", FEE_BPS.to_string()),
        ("ORDER_TTL_SECS", "86400".into()),
        ("ACCESS_TOKEN_TTL_SECS", "3600".into()),
        ("MAX_UNPAID_ORDERS", "50".into()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

async fn settle(pool: &PgPool, flows: &[Flow], deadline: Instant) -> (bool, String) {
    let acked: Vec<Uuid> = flows
        .iter()
        .filter(|f| f.payment.as_ref().is_some_and(|p| p.acked))
        .filter_map(|f| f.order_id)
        .collect();
    loop {
        let state: Result<(i64, i64, i64), sqlx::Error> = sqlx::query_as(
            "SELECT (SELECT count(*) FROM jobs WHERE status IN ('queued', 'running')),
                    (SELECT count(*) FROM webhook_events WHERE processed_at IS NULL),
                    (SELECT count(*) FROM unnest($1::uuid[]) AS a(id)
                     WHERE NOT EXISTS (SELECT 1 FROM orders o WHERE o.id = a.id AND o.status = 'paid'))",
        )
        .bind(&acked)
        .fetch_one(pool)
        .await;
        let last = match state {
            Ok((0, 0, 0)) => return (true, "settled".into()),
            Ok((jobs, events, unpaid)) => format!(
                "{jobs} jobs queued or running, {events} webhook events unprocessed, {unpaid} acknowledged payments not applied"
            ),
            Err(e) => format!("cannot read PostgreSQL: {e}"),
        };
        if Instant::now() >= deadline {
            return (false, last);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

fn log_counts(out: &Path) -> Vec<LogLines> {
    let mut v = Vec::new();
    for name in ["api", "worker-1", "worker-2", "scheduler"] {
        let path = out.join(format!("chaos-{name}.log"));
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        v.push(LogLines {
            log: path.display().to_string(),
            error: text.matches("\"level\":\"ERROR\"").count(),
            warn: text.matches("\"level\":\"WARN\"").count(),
        });
    }
    v
}

async fn drill(args: &ChaosArgs, started: &Started, timeline: Timeline) -> anyhow::Result<bool> {
    let run_started = Instant::now();
    let started_at = Utc::now();
    let bins = bin_dir(args)?;
    let out = &args.out_dir;

    // Services of our own.
    let pg_port = services::free_port(55432)?;
    let api_port = services::free_port(58080)?;
    let work = started.work.clone();
    let pg = tokio::task::spawn_blocking(move || -> anyhow::Result<Postgres> {
        let pg = Postgres::init(&work, pg_port)?;
        pg.start()?;
        Ok(pg)
    })
    .await??;
    let pg = Arc::new(pg);
    *started.postgres.lock().expect("postgres lock") = Some(pg.clone());
    eprintln!(
        "chaos: setup: PostgreSQL on 127.0.0.1:{pg_port} ({})",
        started.work.display()
    );
    started.redis.lock().await.start().await?;
    let redis_url = started.redis.lock().await.url();
    eprintln!("chaos: setup: redis-server on {redis_url}");
    let fake = Arc::new(FakeStripe::default());
    let stripe_base = fake.serve()?;
    eprintln!("chaos: setup: fake Stripe on {stripe_base}");
    let webhook_secret = format!(
        "whsec_chaos_{}",
        (0..16)
            .map(|_| format!("{:02x}", rand::thread_rng().r#gen::<u8>()))
            .collect::<String>()
    );
    let api_addr = format!("127.0.0.1:{api_port}");
    let env = server_env(
        &pg,
        &*started.redis.lock().await,
        &api_addr,
        &stripe_base,
        &webhook_secret,
    );

    // The schema.
    let migrate_log = std::fs::File::create(out.join("chaos-migrate.log"))?;
    let status = Command::new(bins.join("api"))
        .arg("migrate")
        .envs(env.iter().map(|(k, v)| (k, v)))
        .current_dir(&started.work)
        .stdin(Stdio::null())
        .stdout(migrate_log.try_clone()?)
        .stderr(migrate_log)
        .status()?;
    if !status.success() {
        bail!(
            "api migrate failed ({status}); see {}",
            out.join("chaos-migrate.log").display()
        );
    }

    // The system.
    let fleet = &started.fleet;
    for (name, bin) in [
        ("api", "api"),
        ("worker-1", "worker"),
        ("worker-2", "worker"),
        ("scheduler", "scheduler"),
    ] {
        fleet.add(
            name,
            bins.join(bin),
            env.clone(),
            out.join(format!("chaos-{name}.log")),
        );
        let pid = fleet.start(name)?;
        eprintln!("chaos: setup: {name} started (pid {pid})");
    }
    let supervisor = {
        let (fleet, stop) = (fleet.clone(), started.stop.clone());
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                fleet.supervise();
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        })
    };
    let base = format!("http://{api_addr}");
    let setup_api = Api::new(&base, args.setup_concurrency)?;
    setup_api.wait_ready(Duration::from_secs(60)).await?;

    // Buyers, listings, carts.
    let pool = PgPoolOptions::new()
        .max_connections(4)
        .acquire_timeout(Duration::from_secs(30))
        .connect(&pg.url("marketplace_chaos"))
        .await
        .context("failed to connect to the drill's database")?;
    let mut listings: Vec<(i64, i64)> = (0..PLENTIFUL_LISTINGS)
        .map(|_| (1_000_000, rand::thread_rng().gen_range(100..5_000)))
        .collect();
    let scarce_stock = if args.short {
        SCARCE_STOCK_SHORT
    } else {
        SCARCE_STOCK
    };
    listings.extend(scarce_stock.iter().map(|q| (*q, 2_500)));
    let plan = Plan {
        tag: format!("chaos{:06x}", rand::random::<u32>() & 0xff_ffff),
        sellers: 2,
        listings: listings.clone(),
        buyers: args.clients * BUYERS_PER_CLIENT,
        canaries: 0,
        cart: Box::new(|i| i % PLENTIFUL_LISTINGS),
    };
    let seeded = setup::seed(&setup_api, &pool, &plan, args.setup_concurrency).await?;
    let initial: HashMap<Uuid, i64> = seeded
        .listings
        .iter()
        .copied()
        .zip(listings.iter().map(|l| l.0))
        .collect();
    let (plentiful, scarce) = seeded.listings.split_at(PLENTIFUL_LISTINGS);
    eprintln!(
        "chaos: setup: {} buyers, {} listings ({} scarce: {:?} units) in {:.1} s",
        seeded.buyers.len(),
        seeded.listings.len(),
        scarce.len(),
        scarce_stock,
        run_started.elapsed().as_secs_f64()
    );

    // Load and faults.
    let http = load::http_client(args.clients * 2 + 8)?;
    timeline.start_clock();
    let origin = Instant::now();
    let load_end = origin + args.load;
    let deadline = load_end + args.settle;
    timeline.event(format!(
        "load starts: {} clients for {:.0} s, then up to {:.0} s to settle",
        args.clients,
        args.load.as_secs_f64(),
        args.settle.as_secs_f64()
    ));
    let requests = Arc::new(Requests::default());
    let ctx = Arc::new(Ctx {
        http: http.clone(),
        base: base.clone(),
        timeline: timeline.clone(),
        requests: requests.clone(),
        fake: fake.clone(),
        webhook_secret: webhook_secret.clone(),
        plentiful: plentiful.to_vec(),
        scarce: scarce.to_vec(),
        load_end,
        deadline,
        empty_carts: AtomicU64::new(0),
    });
    let ready_stop = Arc::new(AtomicBool::new(false));
    let readiness = tokio::spawn(load::watch_readiness(
        http.clone(),
        format!("{base}/health/ready"),
        timeline.clone(),
        ready_stop.clone(),
    ));
    let secs = args.load.as_secs_f64();
    let targets = faults::Targets {
        fleet: fleet.clone(),
        redis: started.redis.clone(),
        postgres: pg.clone(),
        http: http.clone(),
        api_live: format!("{base}/health/live"),
        timeline: timeline.clone(),
        worker_down: Duration::from_secs_f64((secs / 12.0).min(5.0)),
    };
    let fault_task = tokio::spawn(faults::run(faults::schedule(secs), origin, targets));
    let mut buyers = seeded.buyers;
    let mut clients = Vec::new();
    for _ in 0..args.clients {
        let mine: Vec<_> = buyers
            .drain(..BUYERS_PER_CLIENT.min(buyers.len()))
            .collect();
        clients.push(tokio::spawn(load::client(ctx.clone(), mine)));
    }
    let faults = fault_task.await?;
    let mut flows: Vec<Flow> = Vec::new();
    for c in clients {
        flows.extend(c.await?);
    }
    timeline.event(format!("clients done: {} checkouts", flows.len()));

    // Settle.
    let (settled, state) = settle(&pool, &flows, deadline).await;
    let settled_t = timeline.t();
    let settled_after_load = settled.then_some(settled_t - secs);
    if settled {
        timeline.event(format!(
            "settled, {:.1} s after the load ended",
            settled_t - secs
        ));
    } else {
        timeline.event(format!(
            "NOT settled {:.0} s after the load ended: {state}",
            args.settle.as_secs_f64()
        ));
    }
    ready_stop.store(true, Ordering::Relaxed);
    let samples = readiness.await?;

    // Verify.
    let exits = fleet.unexpected_exits();
    let clients_fig = checks::client_figures(&flows, ctx.empty_carts.load(Ordering::Relaxed));
    let database = checks::database(&pool, &flows, &initial, FEE_BPS).await?;
    let stripe = checks::stripe(&pool, &fake.calls(), &fake.intents()).await?;
    let recovery = checks::recovery(&pool, &faults).await?;
    let windows = checks::windows(&faults, &requests, settled_t);
    let pg_at = faults.iter().position(|f| f.kind == Kind::RestartPostgres);
    let flip = checks::readiness_flip(
        &samples,
        pg_at.map(|i| &faults[i]),
        pg_at.and_then(|i| faults.get(i + 1)).map(|f| f.start_t),
    );
    let checks = checks::checks(
        &clients_fig,
        &database,
        &stripe,
        &recovery,
        &flip,
        &windows,
        &exits,
        &faults,
    );
    started.stop.store(true, Ordering::Relaxed);
    let _ = supervisor.await;
    pool.close().await;

    print_report(&timeline, &faults, &recovery, &windows, &checks);
    let pass = checks.iter().all(|c| c.pass);
    let summary = Summary {
        scenario: "chaos",
        started_at: started_at.to_rfc3339(),
        pass,
        config: SummaryConfig {
            short: args.short,
            load_s: secs,
            settle_limit_s: args.settle.as_secs_f64(),
            recovery_bound_s: checks::RECOVERY_BOUND_S,
            clients: args.clients,
            buyers: plan.buyers,
            listings: listings.len(),
            scarce_stock: scarce_stock.to_vec(),
            worker_replicas: 2,
            binaries: bins.display().to_string(),
            server_env: env
                .into_iter()
                .filter(|(k, _)| k != "STRIPE_WEBHOOK_SECRET")
                .collect(),
            label: args.label.clone(),
        },
        timeline: timeline.events(),
        faults,
        recovery,
        windows,
        readiness: flip,
        settled_after_load_s: settled_after_load,
        clients: clients_fig,
        database,
        stripe,
        server_exits: exits,
        log_lines: log_counts(out),
        checks,
    };
    let stamp = started_at.format("%Y%m%dT%H%M%S%.3fZ");
    let path = out.join(format!("chaos-{stamp}.json"));
    std::fs::write(&path, serde_json::to_string_pretty(&summary)? + "\n")
        .with_context(|| format!("failed to write {}", path.display()))?;
    println!("summary: {}", path.display());
    println!("chaos: {}", if pass { "PASS" } else { "FAIL" });
    Ok(pass)
}

fn print_report(
    timeline: &Timeline,
    faults: &[Fault],
    recovery: &[Recovery],
    windows: &[Window],
    checks: &[Check],
) {
    println!("\n== chaos: timeline (t = seconds since the load started, at = UTC)");
    for e in timeline.events() {
        println!(
            "  t={:7.2}s  {}  {}",
            e.t,
            e.at.format("%H:%M:%S%.3f"),
            e.what
        );
    }
    println!(
        "\n== chaos: faults and recovery (bound {:.0} s)",
        checks::RECOVERY_BOUND_S
    );
    for (f, r) in faults.iter().zip(recovery) {
        let max = |m: Option<f64>| m.map_or_else(|| "-".to_owned(), |m| format!("{m:.1} s"));
        println!(
            "  {:<20} t={:6.2}–{:6.2}s  jobs hit {:>4} (in flight {:>3}), max to final {:>8}, never final {}; events hit {:>4}, max to processed {:>8}, never {}",
            f.name,
            f.start_t,
            f.end_t,
            r.jobs_hit,
            r.jobs_in_flight_at_fault,
            max(r.jobs_max_s),
            r.jobs_not_final,
            r.events_hit,
            max(r.events_max_s),
            r.events_not_processed
        );
    }
    println!("\n== chaos: client requests that failed (5xx or no answer), per fault window");
    for w in windows {
        let fmt: Vec<String> = w
            .errors
            .iter()
            .map(|(s, n)| {
                if *s == 0 {
                    format!("{n} × no answer")
                } else {
                    format!("{n} × {s}")
                }
            })
            .collect();
        println!(
            "  {:<22} t={:6.1}–{:6.1}s  {:>6} requests, failed: {}{}",
            w.name,
            w.from_t,
            w.to_t,
            w.requests,
            if fmt.is_empty() {
                "none".to_owned()
            } else {
                fmt.join(", ")
            },
            w.last_error_after_s
                .map(|s| format!(" (last {s:.1} s into the window; {:?})", w.by_route))
                .unwrap_or_default()
        );
    }
    println!("\n== chaos: checks");
    for c in checks {
        if c.pass {
            println!("PASS {}: {}", c.name, c.value);
        } else {
            println!("FAIL {}: {} (wanted: {})", c.name, c.value, c.target);
        }
    }
}
