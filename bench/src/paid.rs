//! `paid` and `webhooks`: the payment path, with the bench playing Stripe.
//!
//! * `paid`: every buyer checks out (at most `--paid-concurrency` checkout and webhook requests
//!   in flight), waits for the checkout job, reads the order's PaymentIntent, posts a signed
//!   `payment_intent.succeeded` webhook and waits until Postgres shows the order `paid`.
//! * `webhooks`: the buyers' orders are checked out first (not measured); then one signed event
//!   per order is sent at a fixed rate on a timer (open loop: a send never waits for an earlier
//!   answer), and the bench reports the endpoint's latency at that rate and whether the worker
//!   kept up (every order paid, soon after the last send).
//!
//! Afterwards both verify the settlement in Postgres ([`verify::settlement`]).

use std::{
    collections::{BTreeMap, HashMap},
    path::PathBuf,
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use chrono::Utc;
use serde::Serialize;
use sqlx::PgPool;
use tokio::sync::{Barrier, Semaphore};
use uuid::Uuid;

use crate::{
    args::{RunArgs, Scenario},
    client::{Api, CheckoutAnswer, WebhookAnswer},
    load::{self, Load},
    procstat::{self, CpuUsage, Targets},
    report::{Check, Config, ServerMemory, Warmup},
    scenario,
    setup::{self, Buyer},
    stats::Latency,
    stripe,
    verify::{self, Integrity, PgWork, Settlement},
    watch::{Kind, Watcher},
};

/// What happened to one buyer of `paid` (or one order prepared for `webhooks`).
#[derive(Debug)]
struct Flow {
    sent: Instant,
    answered: Instant,
    status: u16,
    error_code: Option<String>,
    unexpected_body: Option<String>,
    /// When the checkout job was seen final, and how it ended (`succeeded`, `failed:<code>`,
    /// `timeout:…`, `error:…`).
    job_done: Option<Instant>,
    job_status: Option<String>,
    order_id: Option<Uuid>,
    intent_id: Option<String>,
    client_secret: Option<String>,
    webhook_sent: Option<Instant>,
    webhook_answered: Option<Instant>,
    webhook: Option<WebhookAnswer>,
    /// When Postgres says the order left `pending_payment`, and its status then.
    settled: Option<Instant>,
    order_status: Option<String>,
}

/// Shared by every buyer task.
struct Ctx {
    api: Arc<Api>,
    pool: PgPool,
    /// Watches jobs in Postgres when not long-polling over HTTP.
    jobs: Option<Watcher>,
    orders: Watcher,
    secret: String,
    limit: Option<Arc<Semaphore>>,
    timeout: Duration,
    /// Unit price per listing (the event's `amount`; one unit per cart).
    prices: HashMap<Uuid, i64>,
    /// Pay the order (`paid`), or stop once it exists (preparing `webhooks`).
    pay: bool,
}

async fn permit(limit: &Option<Arc<Semaphore>>) -> Option<tokio::sync::OwnedSemaphorePermit> {
    match limit {
        Some(s) => s.clone().acquire_owned().await.ok(),
        None => None,
    }
}

/// The order's PaymentIntent from Postgres (when the job result did not name it).
async fn intent_from_db(pool: &PgPool, order_id: Uuid) -> Option<String> {
    sqlx::query_scalar("SELECT payment_intent_id FROM orders WHERE id = $1")
        .bind(order_id)
        .fetch_optional(pool)
        .await
        .ok()
        .flatten()
        .flatten()
}

async fn one_buyer(ctx: Arc<Ctx>, buyer: (String, Uuid, Uuid), start: Arc<Barrier>) -> Flow {
    let (token, address, listing) = buyer;
    let key = Uuid::new_v4().to_string();
    start.wait().await;
    let p = permit(&ctx.limit).await;
    let sent = Instant::now();
    let answer = ctx
        .api
        .checkout(&token, address, &key)
        .await
        .unwrap_or_else(|e| CheckoutAnswer {
            status: 0,
            job_id: None,
            error_code: None,
            unexpected_body: Some(format!("{e:#}")),
        });
    let answered = Instant::now();
    drop(p);
    let mut flow = Flow {
        sent,
        answered,
        status: answer.status,
        error_code: answer.error_code,
        unexpected_body: answer.unexpected_body,
        job_done: None,
        job_status: None,
        order_id: None,
        intent_id: None,
        client_secret: None,
        webhook_sent: None,
        webhook_answered: None,
        webhook: None,
        settled: None,
        order_status: None,
    };
    let Some(job) = answer.job_id else {
        return flow;
    };

    // The checkout job: long-poll it over HTTP, or watch it in Postgres.
    match &ctx.jobs {
        None => {
            let done = ctx.api.wait_job(&token, job, answered + ctx.timeout).await;
            flow.job_done = Some(Instant::now());
            flow.job_status = Some(match &done.error_code {
                Some(code) => format!("{}:{code}", done.status),
                None => done.status.clone(),
            });
            let result = done.result.unwrap_or_default();
            flow.order_id = result["order_id"].as_str().and_then(|s| s.parse().ok());
            flow.client_secret = result["client_secret"].as_str().map(str::to_owned);
            flow.intent_id = flow
                .client_secret
                .as_deref()
                .and_then(stripe::intent_of_client_secret);
        }
        Some(watcher) => match watcher.wait(job, ctx.timeout).await {
            Some(seen) => {
                flow.job_done = Some(seen.at);
                flow.job_status = Some(match &seen.error_code {
                    Some(code) => format!("{}:{code}", seen.status),
                    None => seen.status,
                });
                flow.order_id = seen.order_id;
                flow.intent_id = seen.intent_id;
            }
            None => flow.job_status = Some("timeout".into()),
        },
    }
    if flow.job_status.as_deref() != Some("succeeded") {
        return flow;
    }
    let Some(order_id) = flow.order_id else {
        flow.job_status = Some("succeeded-without-order".into());
        return flow;
    };
    if flow.intent_id.is_none() {
        flow.intent_id = intent_from_db(&ctx.pool, order_id).await;
    }
    if !ctx.pay {
        return flow;
    }
    let Some(intent) = flow.intent_id.clone() else {
        flow.order_status = Some("no-payment-intent".into());
        return flow;
    };

    // Play Stripe: the payment succeeded.
    let amount = ctx.prices.get(&listing).copied().unwrap_or(100);
    let p = permit(&ctx.limit).await;
    let (body, signature) = stripe::succeeded_event(
        &ctx.secret,
        &intent,
        flow.client_secret.as_deref(),
        order_id,
        amount,
    );
    let webhook_sent = Instant::now();
    let ack = ctx.api.post_webhook(body, &signature).await;
    flow.webhook_answered = Some(Instant::now());
    flow.webhook_sent = Some(webhook_sent);
    drop(p);
    let stored = ack.status == 200 && ack.detail == "stored";
    flow.webhook = Some(ack);
    if !stored {
        return flow;
    }
    match ctx.orders.wait(order_id, ctx.timeout).await {
        Some(seen) => {
            flow.settled = Some(seen.at);
            flow.order_status = Some(seen.status);
        }
        None => flow.order_status = Some("timeout:pending_payment".into()),
    }
    flow
}

/// Runs the flow for `buyers`, all released at once (a barrier) and limited by `ctx.limit`.
async fn flows(ctx: &Arc<Ctx>, buyers: &[Buyer]) -> anyhow::Result<Vec<Flow>> {
    let start = Arc::new(Barrier::new(buyers.len() + 1));
    let tasks: Vec<_> = buyers
        .iter()
        .map(|b| {
            tokio::spawn(one_buyer(
                ctx.clone(),
                (b.token.clone(), b.address_id, b.listing),
                start.clone(),
            ))
        })
        .collect();
    start.wait().await;
    let mut out = Vec::with_capacity(tasks.len());
    for t in tasks {
        out.push(t.await?);
    }
    Ok(out)
}

fn count(map: &mut BTreeMap<String, usize>, key: impl Into<String>) {
    *map.entry(key.into()).or_default() += 1;
}

fn per_s(n: f64, secs: f64) -> f64 {
    if secs > 0.0 { n / secs } else { 0.0 }
}

fn lat(samples: impl Iterator<Item = Duration>) -> Latency {
    Latency::of(&mut samples.collect::<Vec<_>>())
}

/// What a run of `paid` counts.
#[derive(Debug, Clone, Serialize, Default)]
struct PaidThroughput {
    buyers: usize,
    /// `<status>[:<error.code>]` of every checkout answer.
    checkout_answers: BTreeMap<String, usize>,
    /// How the checkout jobs ended.
    jobs: BTreeMap<String, usize>,
    /// `<status>:<ack status or error code>` of every webhook delivery.
    webhook_answers: BTreeMap<String, usize>,
    /// The order's status when last seen (`paid`, or `timeout:…` and the like).
    orders: BTreeMap<String, usize>,
    paid: usize,
    /// First checkout sent → last order seen paid.
    window_s: f64,
    /// `paid / window_s`.
    paid_per_s: f64,
    /// Between the first and the last payment (without the ramp-up of the first checkouts).
    paid_steady_per_s: f64,
    /// Every HTTP request of the phase (checkouts, job polls, webhooks).
    http_requests: u64,
}

/// Latencies of `paid`, in milliseconds.
#[derive(Debug, Clone, Serialize)]
struct PaidLatencies {
    /// `POST /checkout` answered (any status).
    checkout: Latency,
    /// Checkout sent → job seen `succeeded`.
    checkout_to_job_succeeded: Latency,
    /// `POST /webhooks/stripe` answered (all deliveries).
    webhook: Latency,
    /// Webhook answered → order paid (queue + `payment_event` job).
    webhook_to_paid: Latency,
    /// Checkout sent → order paid: the buyer's whole path.
    end_to_end_paid: Latency,
}

/// Per paid order, in milliseconds of CPU.
#[derive(Debug, Clone, Serialize)]
struct CpuPerPaid {
    server_total_ms: f64,
    api_ms: f64,
    worker_ms: f64,
    postgres_ms: f64,
    postgres_this_db_ms: f64,
    redis_ms: f64,
}

fn cpu_per(cpu: &CpuUsage, n: usize) -> CpuPerPaid {
    let per = |s: f64| if n == 0 { 0.0 } else { s * 1000.0 / n as f64 };
    CpuPerPaid {
        server_total_ms: per(cpu.server_total_s),
        api_ms: per(cpu.api_s),
        worker_ms: per(cpu.worker_s),
        postgres_ms: per(cpu.postgres_s),
        postgres_this_db_ms: per(cpu.postgres_this_db_s),
        redis_ms: per(cpu.redis_s),
    }
}

/// Counts per 100 ms from the first checkout.
#[derive(Debug, Clone, Serialize, Default)]
struct PaidTimeline {
    bucket_ms: u64,
    checkouts_sent: Vec<u32>,
    jobs_succeeded: Vec<u32>,
    webhooks_sent: Vec<u32>,
    paid: Vec<u32>,
}

fn bump(v: &mut Vec<u32>, from: Instant, at: Instant) {
    let i = (at.saturating_duration_since(from).as_millis() / 100) as usize;
    if v.len() <= i {
        v.resize(i + 1, 0);
    }
    v[i] += 1;
}

/// The `paid` JSON summary.
#[derive(Debug, Clone, Serialize)]
struct PaidSummary {
    scenario: String,
    started_at: String,
    config: Config,
    setup_s: f64,
    warmup: Warmup,
    throughput: PaidThroughput,
    latency_ms: PaidLatencies,
    cpu_s: CpuUsage,
    cpu_per_paid_order: CpuPerPaid,
    postgres_work: PgWork,
    memory: ServerMemory,
    integrity: Integrity,
    settlement: Settlement,
    unexpected: Vec<String>,
    checks: Vec<Check>,
    timeline: PaidTimeline,
}

/// One signed delivery of `webhooks`.
struct Delivery {
    scheduled: Instant,
    sent: Instant,
    answered: Instant,
    answer: WebhookAnswer,
    /// When the order was seen paid (or otherwise settled) and its status.
    settled: Option<(Instant, String)>,
}

/// What `webhooks` measures.
#[derive(Debug, Clone, Serialize, Default)]
struct WebhookRate {
    target_per_s: u32,
    events: usize,
    /// First scheduled send → last send.
    send_window_s: f64,
    /// `events / send_window_s` as actually sent.
    sent_per_s: f64,
    /// Sends that left more than 2 ms after their scheduled time (the generator fell behind;
    /// tokio's timer has 1 ms resolution).
    late_sends: usize,
    /// `<status>:<ack status or error code>` → count.
    answers: BTreeMap<String, usize>,
    /// Orders seen paid.
    paid: usize,
    /// Order status when last seen → count.
    orders: BTreeMap<String, usize>,
    /// Last send → last order paid: how far the worker was behind when the sending stopped.
    drain_after_last_send_s: f64,
    /// First send → last order paid, and the paid rate over it.
    window_s: f64,
    paid_per_s: f64,
    /// Most events waiting (`webhook_events` unprocessed), sampled every 50 ms.
    max_backlog: i64,
    /// Every order paid, and the last one within 1 s of the last send.
    worker_kept_up: bool,
}

/// Latencies of `webhooks`, in milliseconds.
#[derive(Debug, Clone, Serialize)]
struct WebhookLatencies {
    /// Send → answer.
    webhook: Latency,
    /// Scheduled time → answer (includes any delay of the generator itself; what a client
    /// on a fixed schedule would see).
    webhook_from_schedule: Latency,
    /// Webhook answered → order paid.
    webhook_to_paid: Latency,
}

/// The `webhooks` JSON summary.
#[derive(Debug, Clone, Serialize)]
struct WebhooksSummary {
    scenario: String,
    started_at: String,
    config: Config,
    setup_s: f64,
    warmup: Warmup,
    /// Orders prepared for the phase (checked out, not measured).
    prepared_orders: usize,
    prepare_s: f64,
    rate: WebhookRate,
    latency_ms: WebhookLatencies,
    cpu_s: CpuUsage,
    /// Server CPU per delivered and applied event (api answer + `payment_event` job).
    cpu_per_event: CpuPerPaid,
    postgres_work: PgWork,
    memory: ServerMemory,
    /// Unprocessed `webhook_events` per 50 ms from the first send.
    backlog: Vec<i64>,
    integrity: Integrity,
    settlement: Settlement,
    checks: Vec<Check>,
}

fn check(name: &str, target: &str, value: String, pass: bool) -> Check {
    Check {
        name: name.into(),
        target: target.into(),
        value,
        pass,
    }
}

fn settlement_checks(s: &Settlement, i: &Integrity) -> Vec<Check> {
    vec![
        check(
            "every order paid exactly once",
            "all paid, one order per buyer, one applied event per order",
            format!(
                "{:?}; not paid {}, buyers without exactly one order {}, orders not settled by exactly one event {}",
                s.orders_by_status,
                s.orders_not_paid,
                s.buyers_without_exactly_one_order,
                s.orders_not_settled_by_exactly_one_event
            ),
            s.orders > 0
                && s.orders_not_paid == 0
                && s.buyers_without_exactly_one_order == 0
                && s.orders_not_settled_by_exactly_one_event == 0,
        ),
        check(
            "stock settled",
            "reserved 0, quantity reduced by the units sold, no oversell",
            format!(
                "{} units sold, quantity reduced by {}, listings with reserved≠0 {}, with quantity wrong {}, oversell {}, gate drift {}",
                s.sold_units,
                s.quantity_reduced_by,
                s.listings_reserved_not_zero,
                s.listings_quantity_wrong,
                i.oversell_units,
                i.gate_drift_units
            ),
            s.listings_reserved_not_zero == 0
                && s.listings_quantity_wrong == 0
                && s.quantity_reduced_by == s.sold_units
                && i.oversell_units == 0
                && i.reserved_over_quantity == 0
                && i.gate_drift_units == 0,
        ),
        check(
            "ledger",
            "one sale + one platform_fee entry per line, nothing else",
            format!(
                "{} lines; sale wrong {}, fee wrong {}, other entries {}",
                s.lines, s.lines_sale_entry_wrong, s.lines_fee_entry_wrong, s.other_ledger_entries
            ),
            s.lines > 0
                && s.lines_sale_entry_wrong == 0
                && s.lines_fee_entry_wrong == 0
                && s.other_ledger_entries == 0,
        ),
        check(
            "unprocessed webhook events",
            "0",
            format!(
                "{} ({} in the whole database)",
                s.unprocessed_webhook_events, s.unprocessed_webhook_events_anywhere
            ),
            s.unprocessed_webhook_events == 0 && s.unprocessed_webhook_events_anywhere == 0,
        ),
    ]
}

fn memory_checks(m: &ServerMemory, note: &str) -> Vec<Check> {
    [("api", &m.api, 64.0), ("worker", &m.worker, 40.0)]
        .into_iter()
        .map(|(name, m, max)| {
            check(
                &format!("{name} peak RSS{note}"),
                &format!("< {max:.0} MiB"),
                format!("{:.1} MiB", m.peak_rss_mib),
                m.peak_rss_mib < max,
            )
        })
        .collect()
}

fn fee_bps() -> i64 {
    std::env::var("PLATFORM_FEE_BPS")
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(1000)
}

/// Everything both scenarios set up before measuring.
struct Prepared {
    ctx: Arc<Ctx>,
    targets: Targets,
    plan: setup::Plan,
    seeded: setup::Seeded,
    warmup: Warmup,
    load: Load,
}

async fn prepare(scenario: Scenario, args: &RunArgs, pool: &PgPool) -> anyhow::Result<Prepared> {
    let secret = args
        .webhook_secret
        .clone()
        .context("no webhook secret (--webhook-secret or BENCH_WEBHOOK_SECRET)")?;
    let targets = Targets {
        api: procstat::find_pid("api", args.api_pid)?,
        worker: procstat::find_pid("worker", args.worker_pid)?,
        database: scenario::database_name(&args.database_url),
    };
    let plan = scenario::plan(scenario, args);
    let load = Load {
        concurrency: Some(args.paid_concurrency),
        poll: args.poll,
        job_timeout: args.job_timeout,
    };
    let api = Arc::new(Api::new(&args.api, plan.buyers + 64)?);
    eprintln!("{}: setting up {} buyers", scenario.name(), plan.buyers);
    let seeded = setup::seed(&api, pool, &plan, args.setup_concurrency).await?;
    load::warm_up(&api, args.paid_concurrency.max(64)).await?;
    let prices: HashMap<Uuid, i64> = seeded
        .listings
        .iter()
        .copied()
        .zip(plan.listings.iter().map(|l| l.1))
        .chain(seeded.canaries.first().map(|c| (c.listing, 100)))
        .collect();
    let ctx = Arc::new(Ctx {
        api,
        pool: pool.clone(),
        jobs: (!args.poll).then(|| Watcher::spawn(pool.clone(), Kind::Job)),
        orders: Watcher::spawn(pool.clone(), Kind::Order),
        secret,
        limit: None,
        timeout: args.job_timeout,
        prices,
        pay: true,
    });
    // Warm-up: the canaries check out and pay, so the worker has run both job kinds and every
    // pool is warm before the measurement.
    let started = Instant::now();
    let canary = flows(&ctx, &seeded.canaries).await?;
    let paid = canary
        .iter()
        .filter(|f| f.order_status.as_deref() == Some("paid"))
        .count();
    let warmup = Warmup {
        checkouts: canary.len(),
        succeeded: paid,
        wait_s: started.elapsed().as_secs_f64(),
    };
    eprintln!(
        "  warm-up: {}/{} orders checked out and paid in {:.2} s",
        paid, warmup.checkouts, warmup.wait_s
    );
    if paid != canary.len() {
        let why: Vec<String> = canary
            .iter()
            .filter(|f| f.order_status.as_deref() != Some("paid"))
            .take(3)
            .map(|f| {
                format!(
                    "checkout {} {:?}, job {:?}, webhook {:?}, order {:?}",
                    f.status, f.error_code, f.job_status, f.webhook, f.order_status
                )
            })
            .collect();
        bail!(
            "warm-up orders were not all paid (is STRIPE_WEBHOOK_SECRET of the api the bench's secret, and STRIPE_SECRET_KEY unset?): {why:?}"
        );
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    Ok(Prepared {
        ctx,
        targets,
        plan,
        seeded,
        warmup,
        load,
    })
}

/// Runs `paid` or `webhooks` and returns the path of its JSON summary.
pub(crate) async fn run(
    scenario: Scenario,
    args: &RunArgs,
    pool: &PgPool,
) -> anyhow::Result<PathBuf> {
    let started_at = Utc::now();
    let setup_started = Instant::now();
    let mut p = prepare(scenario, args, pool).await?;
    let setup_s = setup_started.elapsed().as_secs_f64();
    let config = scenario::config(args, &p.plan, &p.targets, &p.load);
    let stamp = started_at.format("%Y%m%dT%H%M%S%.3fZ").to_string();
    let json = match scenario {
        Scenario::Webhooks => {
            let s = webhooks(args, pool, &mut p, config, started_at, setup_s).await?;
            print_webhooks(&s);
            serde_json::to_string_pretty(&s)?
        }
        _ => {
            let s = paid(args, pool, &mut p, config, started_at, setup_s).await?;
            print_paid(&s);
            serde_json::to_string_pretty(&s)?
        }
    };
    std::fs::create_dir_all(&args.out_dir)
        .with_context(|| format!("failed to create {}", args.out_dir.display()))?;
    let path = args
        .out_dir
        .join(format!("{}-{stamp}.json", scenario.name()));
    std::fs::write(&path, json + "\n")
        .with_context(|| format!("failed to write {}", path.display()))?;
    Ok(path)
}

/// Process and Postgres readings before a phase.
struct Before {
    sample: procstat::Sample,
    pg: verify::PgCounters,
    api: procstat::Memory,
    worker: procstat::Memory,
}

async fn before(pool: &PgPool, t: &Targets) -> anyhow::Result<Before> {
    Ok(Before {
        api: procstat::memory(t.api)?,
        worker: procstat::memory(t.worker)?,
        pg: verify::pg_counters(pool).await?,
        sample: procstat::sample(t),
    })
}

async fn after(
    pool: &PgPool,
    t: &Targets,
    b: Before,
    n: usize,
) -> anyhow::Result<(CpuUsage, ServerMemory, PgWork)> {
    let sample = procstat::sample(t);
    let pg = verify::pg_counters(pool).await?;
    let cpu = procstat::usage(&b.sample, &sample, procstat::clock_ticks_per_sec());
    let memory = ServerMemory {
        api: procstat::memory(t.api)?,
        worker: procstat::memory(t.worker)?,
        api_before: b.api,
        worker_before: b.worker,
    };
    Ok((cpu, memory, verify::pg_work(b.pg, pg, n)))
}

async fn verify_all(
    pool: &PgPool,
    args: &RunArgs,
    p: &Prepared,
) -> anyhow::Result<(Integrity, Settlement)> {
    let buyer_ids: Vec<Uuid> = p.seeded.buyers.iter().map(|b| b.id).collect();
    let integrity = verify::integrity(
        pool,
        &args.redis_url,
        &args.redis_prefix,
        &p.seeded.listings,
        &buyer_ids,
    )
    .await?;
    let initial: Vec<i64> = p.plan.listings.iter().map(|l| l.0).collect();
    let settlement =
        verify::settlement(pool, &buyer_ids, &p.seeded.listings, &initial, fee_bps()).await?;
    Ok((integrity, settlement))
}

async fn paid(
    args: &RunArgs,
    pool: &PgPool,
    p: &mut Prepared,
    config: Config,
    started_at: chrono::DateTime<Utc>,
    setup_s: f64,
) -> anyhow::Result<PaidSummary> {
    let ctx = Arc::new(Ctx {
        api: p.ctx.api.clone(),
        pool: pool.clone(),
        jobs: p.ctx.jobs.clone(),
        orders: p.ctx.orders.clone(),
        secret: p.ctx.secret.clone(),
        limit: Some(Arc::new(Semaphore::new(args.paid_concurrency))),
        timeout: args.job_timeout,
        prices: p.ctx.prices.clone(),
        pay: true,
    });
    eprintln!("paid: measuring");
    let requests_before = ctx.api.requests();
    let b = before(pool, &p.targets).await?;
    let flows = flows(&ctx, &p.seeded.buyers).await?;
    let n_paid = flows
        .iter()
        .filter(|f| f.order_status.as_deref() == Some("paid"))
        .count();
    let (cpu, memory, postgres_work) = after(pool, &p.targets, b, n_paid).await?;
    let http_requests = ctx.api.requests() - requests_before;
    let (integrity, settlement) = verify_all(pool, args, p).await?;

    let first = flows
        .iter()
        .map(|f| f.sent)
        .min()
        .unwrap_or_else(Instant::now);
    let paid_at: Vec<Instant> = flows
        .iter()
        .filter(|f| f.order_status.as_deref() == Some("paid"))
        .filter_map(|f| f.settled)
        .collect();
    let mut t = PaidThroughput {
        buyers: flows.len(),
        paid: n_paid,
        http_requests,
        ..PaidThroughput::default()
    };
    let mut unexpected = Vec::new();
    for f in &flows {
        count(
            &mut t.checkout_answers,
            match &f.error_code {
                Some(code) => format!("{}:{code}", f.status),
                None => f.status.to_string(),
            },
        );
        if let Some(j) = &f.job_status {
            count(&mut t.jobs, j.clone());
        }
        if let Some(w) = &f.webhook {
            count(&mut t.webhook_answers, format!("{}:{}", w.status, w.detail));
            if w.status != 200 && unexpected.len() < 10 {
                unexpected.push(format!("webhook {} {}", w.status, w.detail));
            }
        }
        if let Some(o) = &f.order_status {
            count(&mut t.orders, o.clone());
        }
        if let Some(body) = &f.unexpected_body
            && unexpected.len() < 10
        {
            unexpected.push(format!("checkout {} {body}", f.status));
        }
    }
    if let Some(last) = paid_at.iter().max() {
        t.window_s = last.saturating_duration_since(first).as_secs_f64();
        t.paid_per_s = per_s(n_paid as f64, t.window_s);
        let first_paid = paid_at.iter().min().copied().unwrap_or(*last);
        t.paid_steady_per_s = per_s(
            n_paid.saturating_sub(1) as f64,
            (*last - first_paid).as_secs_f64(),
        );
    }
    let latency_ms = PaidLatencies {
        checkout: lat(flows.iter().map(|f| f.answered - f.sent)),
        checkout_to_job_succeeded: lat(flows
            .iter()
            .filter(|f| f.job_status.as_deref() == Some("succeeded"))
            .filter_map(|f| Some(f.job_done?.saturating_duration_since(f.sent)))),
        webhook: lat(flows
            .iter()
            .filter_map(|f| Some(f.webhook_answered? - f.webhook_sent?))),
        webhook_to_paid: lat(flows
            .iter()
            .filter(|f| f.order_status.as_deref() == Some("paid"))
            .filter_map(|f| Some(f.settled?.saturating_duration_since(f.webhook_answered?)))),
        end_to_end_paid: lat(flows
            .iter()
            .filter(|f| f.order_status.as_deref() == Some("paid"))
            .filter_map(|f| Some(f.settled?.saturating_duration_since(f.sent)))),
    };
    let mut timeline = PaidTimeline {
        bucket_ms: 100,
        ..PaidTimeline::default()
    };
    for f in &flows {
        bump(&mut timeline.checkouts_sent, first, f.sent);
        if f.job_status.as_deref() == Some("succeeded")
            && let Some(at) = f.job_done
        {
            bump(&mut timeline.jobs_succeeded, first, at);
        }
        if let Some(at) = f.webhook_sent {
            bump(&mut timeline.webhooks_sent, first, at);
        }
        if f.order_status.as_deref() == Some("paid")
            && let Some(at) = f.settled
        {
            bump(&mut timeline.paid, first, at);
        }
    }
    let len = [
        &timeline.checkouts_sent,
        &timeline.jobs_succeeded,
        &timeline.webhooks_sent,
        &timeline.paid,
    ]
    .iter()
    .map(|v| v.len())
    .max()
    .unwrap_or(0);
    for v in [
        &mut timeline.checkouts_sent,
        &mut timeline.jobs_succeeded,
        &mut timeline.webhooks_sent,
        &mut timeline.paid,
    ] {
        v.resize(len, 0);
    }

    let cpu_per_paid_order = cpu_per(&cpu, n_paid);
    let mut checks = vec![
        check(
            "paid orders/s (first checkout → last order paid)",
            ">= 800/s",
            format!("{:.0}/s", t.paid_per_s),
            t.paid_per_s >= 800.0,
        ),
        check(
            "server CPU per paid order",
            "<= 2.5 ms",
            format!("{:.2} ms", cpu_per_paid_order.server_total_ms),
            n_paid > 0 && cpu_per_paid_order.server_total_ms <= 2.5,
        ),
        check(
            "webhook latency p99",
            "< 10 ms",
            format!("{:.2} ms", latency_ms.webhook.p99_ms),
            latency_ms.webhook.count > 0 && latency_ms.webhook.p99_ms < 10.0,
        ),
        check(
            "every buyer's order paid",
            &format!("{} paid", flows.len()),
            format!("{n_paid}"),
            n_paid == flows.len(),
        ),
    ];
    checks.extend(settlement_checks(&settlement, &integrity));
    checks.extend(memory_checks(&memory, ""));
    Ok(PaidSummary {
        scenario: "paid".into(),
        started_at: started_at.to_rfc3339(),
        config,
        setup_s,
        warmup: p.warmup.clone(),
        throughput: t,
        latency_ms,
        cpu_s: cpu,
        cpu_per_paid_order,
        postgres_work,
        memory,
        integrity,
        settlement,
        unexpected,
        checks,
        timeline,
    })
}

async fn webhooks(
    args: &RunArgs,
    pool: &PgPool,
    p: &mut Prepared,
    config: Config,
    started_at: chrono::DateTime<Utc>,
    setup_s: f64,
) -> anyhow::Result<WebhooksSummary> {
    // Not measured: every buyer checks out, and one signed event per order is made ready.
    let prep_ctx = Arc::new(Ctx {
        api: p.ctx.api.clone(),
        pool: pool.clone(),
        jobs: p.ctx.jobs.clone(),
        orders: p.ctx.orders.clone(),
        secret: p.ctx.secret.clone(),
        limit: Some(Arc::new(Semaphore::new(args.paid_concurrency))),
        timeout: args.job_timeout,
        prices: p.ctx.prices.clone(),
        pay: false,
    });
    eprintln!(
        "webhooks: checking out {} orders to pay",
        p.seeded.buyers.len()
    );
    let prep_started = Instant::now();
    let prepared = flows(&prep_ctx, &p.seeded.buyers).await?;
    let prepare_s = prep_started.elapsed().as_secs_f64();
    let mut events: Vec<(Uuid, Vec<u8>, String)> = Vec::with_capacity(prepared.len());
    for (f, b) in prepared.iter().zip(&p.seeded.buyers) {
        let (Some(order), Some(intent)) = (f.order_id, f.intent_id.as_deref()) else {
            continue;
        };
        let amount = p.ctx.prices.get(&b.listing).copied().unwrap_or(100);
        let (body, sig) = stripe::succeeded_event(
            &p.ctx.secret,
            intent,
            f.client_secret.as_deref(),
            order,
            amount,
        );
        events.push((order, body, sig));
    }
    eprintln!(
        "  prepared {}/{} orders in {:.1} s",
        events.len(),
        prepared.len(),
        prepare_s
    );
    if events.len() != prepared.len() {
        bail!("not every checkout produced an order with a payment intent; see the server logs");
    }
    tokio::time::sleep(Duration::from_millis(300)).await;

    eprintln!(
        "webhooks: sending {} events at {}/s",
        events.len(),
        args.webhook_rate
    );
    let b = before(pool, &p.targets).await?;
    // Backlog sampler: unprocessed events every 50 ms until told to stop.
    let (stop_tx, mut stop_rx) = tokio::sync::oneshot::channel::<()>();
    let sampler_pool = pool.clone();
    let sampler = tokio::spawn(async move {
        let mut samples: Vec<i64> = Vec::new();
        let mut tick = tokio::time::interval(Duration::from_millis(50));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = &mut stop_rx => break,
                _ = tick.tick() => {
                    let n: i64 = sqlx::query_scalar(
                        "SELECT count(*) FROM webhook_events WHERE processed_at IS NULL",
                    )
                    .fetch_one(&sampler_pool)
                    .await
                    .unwrap_or(-1);
                    samples.push(n);
                }
            }
        }
        samples
    });
    let period = Duration::from_secs_f64(1.0 / f64::from(args.webhook_rate));
    let t0 = Instant::now() + Duration::from_millis(5);
    let mut tasks = Vec::with_capacity(events.len());
    for (i, (order, body, sig)) in events.into_iter().enumerate() {
        let scheduled = t0 + period * i as u32;
        tokio::time::sleep_until(scheduled.into()).await;
        let api = p.ctx.api.clone();
        let orders = p.ctx.orders.clone();
        let timeout = args.job_timeout;
        tasks.push(tokio::spawn(async move {
            let sent = Instant::now();
            let answer = api.post_webhook(body, &sig).await;
            let answered = Instant::now();
            let settled = if answer.status == 200 && answer.detail == "stored" {
                orders.wait(order, timeout).await.map(|s| (s.at, s.status))
            } else {
                None
            };
            Delivery {
                scheduled,
                sent,
                answered,
                answer,
                settled,
            }
        }));
    }
    let mut deliveries = Vec::with_capacity(tasks.len());
    for t in tasks {
        deliveries.push(t.await?);
    }
    let n_paid = deliveries
        .iter()
        .filter(|d| d.settled.as_ref().is_some_and(|s| s.1 == "paid"))
        .count();
    let (cpu, memory, postgres_work) = after(pool, &p.targets, b, n_paid).await?;
    let _ = stop_tx.send(());
    let backlog = sampler.await.unwrap_or_default();
    let (integrity, settlement) = verify_all(pool, args, p).await?;

    let mut r = WebhookRate {
        target_per_s: args.webhook_rate,
        events: deliveries.len(),
        paid: n_paid,
        max_backlog: backlog.iter().copied().max().unwrap_or(0),
        ..WebhookRate::default()
    };
    let first_sent = deliveries.iter().map(|d| d.sent).min();
    let last_sent = deliveries.iter().map(|d| d.sent).max();
    let last_paid = deliveries
        .iter()
        .filter_map(|d| d.settled.as_ref().map(|s| s.0))
        .max();
    if let (Some(first), Some(last)) = (first_sent, last_sent) {
        r.send_window_s = (last - t0.min(first)).as_secs_f64();
        r.sent_per_s = per_s(deliveries.len() as f64, r.send_window_s);
        if let Some(paid) = last_paid {
            r.drain_after_last_send_s = paid.saturating_duration_since(last).as_secs_f64();
            r.window_s = paid.saturating_duration_since(first).as_secs_f64();
            r.paid_per_s = per_s(n_paid as f64, r.window_s);
        }
    }
    for d in &deliveries {
        r.late_sends +=
            usize::from(d.sent.saturating_duration_since(d.scheduled) > Duration::from_millis(2));
        count(
            &mut r.answers,
            format!("{}:{}", d.answer.status, d.answer.detail),
        );
        count(
            &mut r.orders,
            d.settled
                .as_ref()
                .map_or("not seen settled".to_string(), |s| s.1.clone()),
        );
    }
    r.worker_kept_up = n_paid == deliveries.len() && r.drain_after_last_send_s < 1.0;
    let latency_ms = WebhookLatencies {
        webhook: lat(deliveries.iter().map(|d| d.answered - d.sent)),
        webhook_from_schedule: lat(deliveries
            .iter()
            .map(|d| d.answered.saturating_duration_since(d.scheduled))),
        webhook_to_paid: lat(deliveries
            .iter()
            .filter_map(|d| Some(d.settled.as_ref()?.0.saturating_duration_since(d.answered)))),
    };
    let cpu_per_event = cpu_per(&cpu, n_paid);
    let target = f64::from(args.webhook_rate);
    let mut checks = vec![
        check(
            "send rate held",
            &format!(">= {:.0}/s (95% of {})", 0.95 * target, args.webhook_rate),
            format!("{:.0}/s, {} late sends", r.sent_per_s, r.late_sends),
            r.sent_per_s >= 0.95 * target,
        ),
        check(
            &format!("webhook latency p99 at {}/s", args.webhook_rate),
            "< 10 ms",
            format!(
                "{:.2} ms (max {:.2} ms)",
                latency_ms.webhook.p99_ms, latency_ms.webhook.max_ms
            ),
            latency_ms.webhook.count > 0 && latency_ms.webhook.p99_ms < 10.0,
        ),
        check(
            "every delivery stored",
            "all 200 stored",
            format!("{:?}", r.answers),
            r.answers.len() == 1 && r.answers.contains_key("200:stored"),
        ),
        check(
            "worker kept up",
            "every order paid, the last < 1 s after the last send",
            format!(
                "{}/{} paid, last {:.3} s after the last send, max backlog {}",
                n_paid,
                deliveries.len(),
                r.drain_after_last_send_s,
                r.max_backlog
            ),
            r.worker_kept_up,
        ),
        check(
            "server CPU per paid order (webhook + payment job only)",
            "<= 1 ms",
            format!("{:.2} ms", cpu_per_event.server_total_ms),
            n_paid > 0 && cpu_per_event.server_total_ms <= 1.0,
        ),
    ];
    checks.extend(settlement_checks(&settlement, &integrity));
    checks.extend(memory_checks(
        &memory,
        " (since start: the unmeasured checkouts included)",
    ));
    Ok(WebhooksSummary {
        scenario: "webhooks".into(),
        started_at: started_at.to_rfc3339(),
        config,
        setup_s,
        warmup: p.warmup.clone(),
        prepared_orders: prepared.len(),
        prepare_s,
        rate: r,
        latency_ms,
        cpu_s: cpu,
        cpu_per_event,
        postgres_work,
        memory,
        backlog,
        integrity,
        settlement,
        checks,
    })
}

fn print_common(cpu: &CpuUsage, per: &CpuPerPaid, unit: &str, m: &ServerMemory, pg: &PgWork) {
    println!(
        "cpu s: api {:.2}  worker {:.2}  postgres {:.2} (this db {:.2})  redis {:.2}  = server {:.2}; bench {:.2}; machine busy {:.2} s ({:.2} cores)",
        cpu.api_s,
        cpu.worker_s,
        cpu.postgres_s,
        cpu.postgres_this_db_s,
        cpu.redis_s,
        cpu.server_total_s,
        cpu.bench_s,
        cpu.machine_busy_s,
        cpu.machine_busy_cores
    );
    println!(
        "cpu per {unit}: {:.3} ms (api {:.3}, worker {:.3}, postgres {:.3}, redis {:.3})",
        per.server_total_ms, per.api_ms, per.worker_ms, per.postgres_ms, per.redis_ms
    );
    println!(
        "postgres (cluster-wide): {} write transactions ({:.2} per {unit}), {:.0} KiB WAL ({:.0} B per {unit})",
        pg.write_transactions,
        pg.write_transactions_per_checkout,
        pg.wal_bytes / 1024.0,
        pg.wal_bytes_per_checkout
    );
    println!(
        "memory MiB: api peak {:.1} (rss {:.1}; before the phase peak {:.1}), worker peak {:.1} (rss {:.1}; before {:.1})",
        m.api.peak_rss_mib,
        m.api.rss_mib,
        m.api_before.peak_rss_mib,
        m.worker.peak_rss_mib,
        m.worker.rss_mib,
        m.worker_before.peak_rss_mib
    );
    if cpu.other_processes_s > 0.1 * cpu.machine_busy_s.max(0.1) {
        println!(
            "WARNING: other processes used {:.2} CPU s during the phase (machine busy {:.2} s): the machine was shared, figures are noisy",
            cpu.other_processes_s, cpu.machine_busy_s
        );
    }
}

fn print_settlement(s: &Settlement) {
    println!(
        "settlement: orders {:?}; {} lines, {} units sold; events with a note {:?}; unprocessed events {} (anywhere {})",
        s.orders_by_status,
        s.lines,
        s.sold_units,
        s.events_with_note,
        s.unprocessed_webhook_events,
        s.unprocessed_webhook_events_anywhere
    );
}

fn print_checks(checks: &[Check]) {
    for c in checks {
        let mark = if c.pass { "PASS" } else { "FAIL" };
        println!("  [{mark}] {}: {} (target {})", c.name, c.value, c.target);
    }
}

fn print_paid(s: &PaidSummary) {
    let t = &s.throughput;
    let l = &s.latency_ms;
    println!(
        "=== paid ({} buyers, {} listing(s) x {} units, concurrency {}, {}) ===",
        s.config.buyers,
        s.config.listings,
        s.config.units_per_listing,
        s.config
            .concurrency
            .map_or("all".to_string(), |c| c.to_string()),
        if s.config.poll_over_http {
            "jobs long-polled over HTTP"
        } else {
            "jobs watched in Postgres"
        }
    );
    println!(
        "setup {:.1} s; warm-up {}/{} orders paid in {:.2} s",
        s.setup_s, s.warmup.succeeded, s.warmup.checkouts, s.warmup.wait_s
    );
    println!(
        "checkouts {:?}; jobs {:?}; webhooks {:?}; orders {:?}",
        t.checkout_answers, t.jobs, t.webhook_answers, t.orders
    );
    println!(
        "paid {} in {:.3} s = {:.0} paid orders/s ({:.0}/s from first to last payment); {} HTTP requests",
        t.paid, t.window_s, t.paid_per_s, t.paid_steady_per_s, t.http_requests
    );
    println!("latency  checkout          {}", l.checkout.short());
    println!(
        "         checkout→job done {}",
        l.checkout_to_job_succeeded.short()
    );
    println!("         webhook           {}", l.webhook.short());
    println!("         webhook→paid      {}", l.webhook_to_paid.short());
    println!("         e2e checkout→paid {}", l.end_to_end_paid.short());
    print_common(
        &s.cpu_s,
        &s.cpu_per_paid_order,
        "paid order",
        &s.memory,
        &s.postgres_work,
    );
    print_settlement(&s.settlement);
    for u in &s.unexpected {
        println!("unexpected: {u}");
    }
    print_checks(&s.checks);
}

fn print_webhooks(s: &WebhooksSummary) {
    let r = &s.rate;
    let l = &s.latency_ms;
    println!(
        "=== webhooks ({} events at {}/s, open loop; orders over {} listing(s)) ===",
        r.events, r.target_per_s, s.config.listings
    );
    println!(
        "setup {:.1} s; warm-up {}/{} orders paid in {:.2} s; {} orders checked out beforehand in {:.1} s",
        s.setup_s,
        s.warmup.succeeded,
        s.warmup.checkouts,
        s.warmup.wait_s,
        s.prepared_orders,
        s.prepare_s
    );
    println!(
        "sent {} in {:.3} s = {:.0}/s ({} sends > 2 ms late); answers {:?}",
        r.events, r.send_window_s, r.sent_per_s, r.late_sends, r.answers
    );
    println!(
        "worker: {} paid, orders {:?}; last paid {:.3} s after the last send; {:.0} paid/s over {:.3} s; max backlog {} events; kept up: {}",
        r.paid,
        r.orders,
        r.drain_after_last_send_s,
        r.paid_per_s,
        r.window_s,
        r.max_backlog,
        if r.worker_kept_up { "yes" } else { "NO" }
    );
    println!("latency  webhook               {}", l.webhook.short());
    println!(
        "         webhook from schedule {}",
        l.webhook_from_schedule.short()
    );
    println!(
        "         webhook→paid          {}",
        l.webhook_to_paid.short()
    );
    print_common(
        &s.cpu_s,
        &s.cpu_per_event,
        "paid order",
        &s.memory,
        &s.postgres_work,
    );
    print_settlement(&s.settlement);
    print_checks(&s.checks);
}
