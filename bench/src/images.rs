//! `images`: what listing pictures cost. A seller uploads the bench's photo-like JPEG (just under
//! 5 MB, 12 megapixels: [`photo`](crate::photo)) to their listings through
//! `POST /api/v1/listings/{id}/images`, where the api validates it in full (format by its bytes,
//! a full decode, metadata stripped), stores the original and commits the `pending` row with its
//! `process_image` job; the worker decodes it again, writes the 1024 px and 320 px WebP
//! renditions and sets it `ready`.
//!
//! 1. **One at a time** (`--image-count`): per image, the upload's latency (client and api side),
//!    the time until it is ready, and the worker's own processing time.
//! 2. **Several uploaders** (`--image-parallel` at once, `--image-parallel-count` images):
//!    images/s processed end to end.
//!
//! Around each phase the CPU of the servers is read from `/proc` (per image), and the peak RSS of
//! api and worker. There are no targets: the figures are for the record; the checks are about
//! correctness (every upload accepted, every image ready with the right size, WebP served).

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    io::Cursor,
    path::PathBuf,
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgPool;
use tokio::sync::Barrier;
use uuid::Uuid;

use crate::{
    args::{RunArgs, Scenario},
    client::{self, Api},
    output::check,
    photo::{self, Photo},
    procstat::{self, CpuUsage, Memory, Targets},
    report::Check,
    scenario::{self, SERVER_ENV},
    setup,
    stats::Latency,
};

/// The image settings recorded next to the figures (when set; `bench/run` exports
/// `IMAGE_DECODE_CONCURRENCY`).
const IMAGE_ENV: &[&str] = &[
    "IMAGE_DECODE_CONCURRENCY",
    "IMAGE_MAX_BYTES",
    "IMAGE_UPLOAD_MAX_BYTES",
    "IMAGE_MAX_PIXELS",
    "IMAGE_MAX_PER_LISTING",
    "IMAGE_THUMB_PX",
    "IMAGE_LARGE_PX",
    "IMAGE_WEBP_QUALITY",
    "OBJECT_STORE_DIR",
];

/// How often the one-at-a-time phase looks for its image to be ready. The time until ready is
/// taken from the job row, so this only bounds how soon the next upload starts (and how much
/// the polling adds to PostgreSQL's CPU).
const POLL: Duration = Duration::from_millis(5);
/// How often the throughput phase counts the images still pending.
const POLL_MANY: Duration = Duration::from_millis(10);
/// The api operation of an upload, its `route` label in `/metrics`.
const UPLOAD_ROUTE: &str = "upload_listing_images";

fn env_number(name: &str, default: u32) -> u32 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(default)
}

/// A histogram's `(sum in seconds, count)`.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct Hist {
    sum: f64,
    count: u64,
}

/// The value of sample `metric` with `labels` in a Prometheus text exposition.
fn sample(text: &str, metric: &str, labels: &[(&str, &str)]) -> Option<f64> {
    text.lines().find_map(|line| {
        let rest = line.strip_prefix(metric)?;
        let (block, value) = match rest.strip_prefix('{') {
            Some(r) => r.split_once('}')?,
            None => ("", rest),
        };
        // A longer metric name that merely starts with `metric`.
        if !value.starts_with(' ') {
            return None;
        }
        let pairs: Vec<&str> = block.split(',').collect();
        labels
            .iter()
            .all(|(k, v)| pairs.contains(&format!("{k}=\"{v}\"").as_str()))
            .then_some(())?;
        value.split_whitespace().next()?.parse().ok()
    })
}

/// Histogram `name` with `labels`; zero before its first observation.
fn hist(text: &str, name: &str, labels: &[(&str, &str)]) -> Hist {
    Hist {
        sum: sample(text, &format!("{name}_sum"), labels).unwrap_or(0.0),
        count: sample(text, &format!("{name}_count"), labels).map_or(0, |c| c as u64),
    }
}

/// The two scrapes: the api's upload latency and the worker's `process_image` deliveries.
struct Meters {
    api: Arc<Api>,
    worker: Option<String>,
}

impl Meters {
    async fn api_uploads(&self) -> anyhow::Result<Hist> {
        let text = self.api.get_text("/metrics").await?;
        Ok(hist(
            &text,
            "http_request_duration_seconds",
            &[("route", UPLOAD_ROUTE), ("method", "POST")],
        ))
    }

    async fn worker_jobs(&self) -> anyhow::Result<Option<Hist>> {
        let Some(url) = &self.worker else {
            return Ok(None);
        };
        let text = self.api.get_text(url).await?;
        Ok(Some(hist(
            &text,
            "job_duration_seconds",
            &[("kind", "process_image")],
        )))
    }

    /// The api's histogram once it counts `want` uploads (it records a request as it answers).
    async fn api_after(&self, want: u64) -> anyhow::Result<Hist> {
        let mut h = self.api_uploads().await?;
        for _ in 0..100 {
            if h.count >= want {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
            h = self.api_uploads().await?;
        }
        Ok(h)
    }

    /// The worker's histogram once it counts `want` deliveries: a delivery is recorded after
    /// its job's transaction committed, a moment after the image is seen ready.
    async fn worker_after(&self, want: u64) -> anyhow::Result<Option<Hist>> {
        let mut h = self.worker_jobs().await?;
        for _ in 0..200 {
            if h.is_none_or(|h| h.count >= want) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
            h = self.worker_jobs().await?;
        }
        Ok(h)
    }
}

/// One upload and what became of it.
#[derive(Debug)]
struct Upload {
    sent: Instant,
    sent_utc: DateTime<Utc>,
    answered: Instant,
    status: u16,
    error: Option<String>,
    image_id: Option<Uuid>,
    /// One at a time: when the poll first saw the image no longer `pending`.
    seen_final: Option<Instant>,
    /// One at a time: the api's own time for the request (`/metrics`).
    api_ms: Option<f64>,
    /// One at a time: the worker's time for the job and its deliveries (`/metrics`).
    worker_ms: Option<f64>,
    worker_deliveries: Option<u64>,
}

/// An image's row and its job's, after a phase.
#[derive(Debug, sqlx::FromRow)]
struct Row {
    id: Uuid,
    status: String,
    width: Option<i32>,
    height: Option<i32>,
    byte_size: i32,
    job_status: Option<String>,
    attempts: Option<i32>,
    error_code: Option<String>,
    created_at: Option<DateTime<Utc>>,
    finished_at: Option<DateTime<Utc>>,
}

async fn rows(pool: &PgPool, ids: &[Uuid]) -> anyhow::Result<HashMap<Uuid, Row>> {
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT i.id, i.status, i.width, i.height, i.byte_size, j.status AS job_status,
                j.attempts, j.error_code, j.created_at, j.finished_at
         FROM images i LEFT JOIN jobs j ON j.id = i.job_id
         WHERE i.id = ANY($1)",
    )
    .bind(ids)
    .fetch_all(pool)
    .await
    .context("failed to read the images")?;
    Ok(rows.into_iter().map(|r| (r.id, r)).collect())
}

fn ms_between(from: DateTime<Utc>, to: DateTime<Utc>) -> f64 {
    (to - from).num_microseconds().unwrap_or(0) as f64 / 1000.0
}

fn lat(samples: impl Iterator<Item = f64>) -> Latency {
    Latency::of_ms(&mut samples.collect::<Vec<_>>())
}

fn per_s(n: f64, secs: f64) -> f64 {
    if secs > 0.0 { n / secs } else { 0.0 }
}

/// Listing `seller`'s images by listing, to tell the new one in an upload's answer.
#[derive(Default)]
struct Known(HashMap<Uuid, HashSet<Uuid>>);

impl Known {
    /// The one image of `ids` not seen on `listing` before.
    fn new_one(&mut self, listing: Uuid, ids: &[Uuid]) -> Option<Uuid> {
        let seen = self.0.entry(listing).or_default();
        let new: Vec<Uuid> = ids
            .iter()
            .copied()
            .filter(|id| !seen.contains(id))
            .collect();
        seen.extend(new.iter().copied());
        match new.as_slice() {
            [one] => Some(*one),
            _ => None,
        }
    }
}

/// Uploads `body` once to `listing`.
async fn upload(api: &Api, token: &str, listing: Uuid, body: &[u8], known: &mut Known) -> Upload {
    let body = body.to_vec();
    let sent_utc = Utc::now();
    let sent = Instant::now();
    let answer = api.upload_images(token, listing, body).await;
    let answered = Instant::now();
    let image_id = (answer.status == 201)
        .then(|| known.new_one(listing, &answer.image_ids))
        .flatten();
    let error = match (&answer.error, answer.status, image_id) {
        (Some(e), _, _) => Some(e.clone()),
        (None, 201, None) => Some("no new image in the answer".into()),
        _ => None,
    };
    Upload {
        sent,
        sent_utc,
        answered,
        status: answer.status,
        error,
        image_id,
        seen_final: None,
        api_ms: None,
        worker_ms: None,
        worker_deliveries: None,
    }
}

/// Polls one image until it is no longer `pending` (or `timeout`).
async fn wait_final(pool: &PgPool, id: Uuid, timeout: Duration) -> anyhow::Result<Option<Instant>> {
    let deadline = Instant::now() + timeout;
    loop {
        let status: String = sqlx::query_scalar("SELECT status FROM images WHERE id = $1")
            .bind(id)
            .fetch_one(pool)
            .await
            .context("failed to poll an image")?;
        if status != "pending" {
            return Ok(Some(Instant::now()));
        }
        if Instant::now() >= deadline {
            return Ok(None);
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Waits until none of `ids` is `pending`, as long as the number pending keeps falling within
/// `stall` (a long backlog is fine; no progress at all is not).
async fn wait_all(pool: &PgPool, ids: &[Uuid], stall: Duration) -> anyhow::Result<i64> {
    let mut last = i64::MAX;
    let mut progress = Instant::now();
    loop {
        let pending: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM images WHERE id = ANY($1) AND status = 'pending'",
        )
        .bind(ids)
        .fetch_one(pool)
        .await
        .context("failed to poll the images")?;
        if pending == 0 {
            return Ok(0);
        }
        if pending < last {
            (last, progress) = (pending, Instant::now());
        } else if progress.elapsed() > stall {
            return Ok(pending);
        }
        tokio::time::sleep(POLL_MANY).await;
    }
}

/// How one image ended: `ready`, `failed:<code>`, `pending` (not processed in time) or
/// `upload <status>`.
fn outcome(u: &Upload, rows: &HashMap<Uuid, Row>) -> String {
    match u.image_id.and_then(|id| rows.get(&id)) {
        Some(r) if r.status == "failed" => {
            format!("failed:{}", r.error_code.as_deref().unwrap_or("-"))
        }
        Some(r) => r.status.clone(),
        None => format!("upload {}", u.status),
    }
}

/// CPU per image, in milliseconds.
#[derive(Debug, Clone, Serialize)]
struct CpuPerImage {
    /// What processing an image costs the two servers: the api's validation and storing, and
    /// the worker's renditions.
    api_plus_worker_ms: f64,
    api_ms: f64,
    worker_ms: f64,
    /// Includes the bench's own polling of the image rows.
    postgres_ms: f64,
    redis_ms: f64,
    server_total_ms: f64,
}

fn cpu_per_image(cpu: &CpuUsage, n: usize) -> CpuPerImage {
    let per = |s: f64| if n == 0 { 0.0 } else { s * 1000.0 / n as f64 };
    CpuPerImage {
        api_plus_worker_ms: per(cpu.api_s + cpu.worker_s),
        api_ms: per(cpu.api_s),
        worker_ms: per(cpu.worker_s),
        postgres_ms: per(cpu.postgres_s),
        redis_ms: per(cpu.redis_s),
        server_total_ms: per(cpu.server_total_s),
    }
}

/// Latencies of the one-at-a-time phase, in milliseconds.
#[derive(Debug, Clone, Serialize)]
struct SequentialLatencies {
    /// Upload sent → 201 answered, at the client (the 5 MB body over loopback included).
    upload: Latency,
    /// The api's own time for the request (`http_request_duration_seconds`): reading the body,
    /// validating (full decode), stripping, storing the original, committing row and job,
    /// answering with the gallery.
    upload_in_api: Latency,
    /// `jobs.finished_at − jobs.created_at`: from the upload's commit to the worker's final
    /// transaction (queue, pickup, processing). The rows' own times: the poll interval adds
    /// nothing.
    queued_to_ready: Latency,
    /// Upload sent → the bench's poll (every 5 ms) sees the image ready: what the seller waits
    /// in all.
    upload_to_ready: Latency,
    /// The worker's own time for the job (`job_duration_seconds`, `process_image`): claim, read
    /// the original, decode, two WebP renditions, write them, commit `ready`.
    worker_processing: Latency,
    /// `queued_to_ready − worker_processing`: queue push and pickup (approximate: the two
    /// figures come from different clocks' start and end points).
    queue_wait: Latency,
}

/// The one-at-a-time phase.
#[derive(Debug, Clone, Serialize)]
struct Sequential {
    images: usize,
    accepted: usize,
    ready: usize,
    /// `ready`, `failed:<code>`, `pending`, `upload <status>` → count.
    outcomes: BTreeMap<String, usize>,
    /// Jobs that needed more than one attempt.
    retried: usize,
    /// Samples left out of `worker_processing` (a second delivery was counted meanwhile).
    worker_samples_ambiguous: usize,
    /// First upload sent → last image seen ready.
    window_s: f64,
    latency_ms: SequentialLatencies,
    cpu_s: CpuUsage,
    cpu_per_image: CpuPerImage,
}

/// Latencies of the throughput phase, in milliseconds.
#[derive(Debug, Clone, Serialize)]
struct ParallelLatencies {
    /// Upload sent → 201 answered, at the client.
    upload: Latency,
    /// `jobs.finished_at − jobs.created_at`.
    queued_to_ready: Latency,
    /// Upload sent (client clock) → `jobs.finished_at` (the database's clock; same machine).
    upload_to_ready: Latency,
}

/// The throughput phase.
#[derive(Debug, Clone, Serialize)]
struct Parallel {
    uploaders: usize,
    images: usize,
    accepted: usize,
    ready: usize,
    outcomes: BTreeMap<String, usize>,
    retried: usize,
    /// First upload sent → last upload answered, and the uploads answered per second over it.
    upload_window_s: f64,
    uploads_per_s: f64,
    /// First upload sent → last image ready (`jobs.finished_at`).
    window_s: f64,
    /// Ready images per second over `window_s`: the headline.
    images_per_s: f64,
    /// Between the first and the last image ready (without the first upload and processing).
    steady_images_per_s: f64,
    latency_ms: ParallelLatencies,
    /// `process_image` deliveries the worker recorded, and their mean time.
    worker_deliveries: Option<u64>,
    worker_processing_mean_ms: Option<f64>,
    cpu_s: CpuUsage,
    cpu_per_image: CpuPerImage,
}

/// api and worker memory at one moment.
#[derive(Debug, Clone, Serialize)]
struct Pair {
    api: Memory,
    worker: Memory,
}

fn pair(t: &Targets) -> anyhow::Result<Pair> {
    Ok(Pair {
        api: procstat::memory(t.api)?,
        worker: procstat::memory(t.worker)?,
    })
}

/// Memory over the scenario; `peak_rss_mib` is `VmHWM`, the peak since the process started.
#[derive(Debug, Clone, Serialize)]
struct ImagesMemory {
    /// Before the first upload.
    idle: Pair,
    after_sequential: Pair,
    /// After the throughput phase: the scenario's peaks.
    end: Pair,
}

/// The renditions of one image, fetched as a browser would.
#[derive(Debug, Clone, Serialize, Default)]
struct Served {
    large_bytes: usize,
    large_size: Option<(u32, u32)>,
    thumb_bytes: usize,
    thumb_size: Option<(u32, u32)>,
    both_webp: bool,
    /// The original as stored (metadata stripped), from `images.byte_size`.
    original_stored_bytes: i64,
    error: Option<String>,
}

/// How the scenario was set up.
#[derive(Debug, Clone, Serialize)]
struct ImagesConfig {
    api: String,
    api_pid: u32,
    worker_pid: u32,
    worker_metrics: Option<String>,
    sequential_images: usize,
    parallel_uploaders: usize,
    parallel_images: usize,
    /// Listings the seller has (each holds at most `images_per_listing`).
    listings: usize,
    images_per_listing: usize,
    poll_interval_ms: f64,
    server_env: BTreeMap<String, String>,
    label: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
struct ImagesWarmup {
    uploads: usize,
    ready: usize,
    wait_s: f64,
}

/// The `images` JSON summary.
#[derive(Debug, Clone, Serialize)]
struct ImagesSummary {
    scenario: String,
    started_at: String,
    config: ImagesConfig,
    photo: Photo,
    setup_s: f64,
    warmup: ImagesWarmup,
    sequential: Sequential,
    parallel: Parallel,
    memory: ImagesMemory,
    served: Served,
    /// Failed uploads and images (first few).
    unexpected: Vec<String>,
    checks: Vec<Check>,
}

/// Listings with room for `n` images, `per` each.
async fn listings(
    api: &Api,
    token: &str,
    tag: &str,
    n: usize,
    per: usize,
) -> anyhow::Result<Vec<Uuid>> {
    let mut out = Vec::new();
    for i in 0..n.div_ceil(per) {
        let title = format!("Bench pictures {i} ({tag})");
        out.push(api.create_listing(token, &title, 1000, 1).await?);
    }
    Ok(out)
}

/// Runs `images` and returns the path of its JSON summary.
pub(crate) async fn run(args: &RunArgs, pool: &PgPool) -> anyhow::Result<PathBuf> {
    let started_at = Utc::now();
    let setup_started = Instant::now();
    let targets = Targets {
        api: procstat::find_pid("api", args.api_pid)?,
        worker: procstat::find_pid("worker", args.worker_pid)?,
        database: scenario::database_name(&args.database_url),
    };
    let n_seq = args.image_count;
    let n_par = args.image_parallel_count.unwrap_or(args.image_count);
    let uploaders = args.image_parallel.min(n_par);
    let per = env_number("IMAGE_MAX_PER_LISTING", 10).max(1) as usize;

    eprintln!("images: making the test picture");
    let photo = photo::generate()?;
    println!(
        "images: test picture {} bytes ({:.2} MiB), {} x {} px ({:.1} MP), JPEG quality {}, noise ±{:.1}, made in {:.1} s ({} encode(s))",
        photo.byte_size,
        photo.mib,
        photo.width,
        photo.height,
        photo.megapixels,
        photo.jpeg_quality,
        photo.noise_amplitude,
        photo.generate_s,
        photo.encodes
    );
    let body = client::upload_body(&photo.bytes)?;

    let api = Arc::new(Api::new(&args.api, uploaders + 4)?);
    let meters = Meters {
        api: api.clone(),
        worker: args.worker_metrics.clone(),
    };
    if meters.worker_jobs().await.is_err() {
        bail!(
            "cannot read the worker's metrics at {:?} (is the worker's METRICS_ADDR that address?)",
            args.worker_metrics
        );
    }
    let plan = scenario::plan(Scenario::Images, args);
    let seller = setup::seller(&api, pool, &plan.tag).await?;
    let warm_listing = listings(&api, &seller.token, &plan.tag, 1, per).await?;
    let seq_listings = listings(&api, &seller.token, &plan.tag, n_seq, per).await?;
    // Each uploader its own listings, as different sellers would: no two uploads wait for
    // the same listing's lock.
    let shares: Vec<usize> = (0..uploaders)
        .map(|u| n_par / uploaders + usize::from(u < n_par % uploaders))
        .collect();
    let mut par_listings = Vec::with_capacity(uploaders);
    for share in &shares {
        par_listings.push(listings(&api, &seller.token, &plan.tag, *share, per).await?);
    }
    let n_listings = 1 + seq_listings.len() + par_listings.iter().map(Vec::len).sum::<usize>();
    eprintln!(
        "  setup: seller {} and {n_listings} listings ({per} images each at most)",
        seller.id
    );
    crate::load::warm_up(&api, uploaders + 1).await?;
    let idle = pair(&targets)?;

    // Warm-up: one picture through the whole path, so the worker is polling its queue and
    // every pool has connections before anything is measured.
    let warm_started = Instant::now();
    let mut known = Known::default();
    let w = upload(&api, &seller.token, warm_listing[0], &body, &mut known).await;
    let Some(id) = w.image_id else {
        bail!(
            "the warm-up upload was refused: {} {:?} (IMAGE_MAX_BYTES below {} bytes?)",
            w.status,
            w.error,
            photo.byte_size
        );
    };
    let warm_ready = wait_final(pool, id, args.job_timeout).await?;
    let warm_rows = rows(pool, &[id]).await?;
    let warmup = ImagesWarmup {
        uploads: 1,
        ready: usize::from(warm_rows.get(&id).is_some_and(|r| r.status == "ready")),
        wait_s: warm_started.elapsed().as_secs_f64(),
    };
    eprintln!(
        "  warm-up: {}/1 image ready in {:.2} s",
        warmup.ready, warmup.wait_s
    );
    if warm_ready.is_none() || warmup.ready != 1 {
        bail!(
            "the warm-up image did not become ready: {:?} (see the worker's log)",
            warm_rows.get(&id).map(|r| (&r.status, &r.error_code))
        );
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let setup_s = setup_started.elapsed().as_secs_f64();

    eprintln!("images: {n_seq} uploads one at a time");
    let (sequential, seq_uploads) = sequential(
        &api,
        pool,
        &meters,
        &targets,
        &seller.token,
        (&seq_listings, per),
        n_seq,
        &body,
        &mut known,
        args.job_timeout,
    )
    .await?;
    let after_sequential = pair(&targets)?;

    eprintln!("images: {n_par} uploads from {uploaders} uploaders at once");
    let (parallel, par_uploads) = parallel(
        &api,
        pool,
        &meters,
        &targets,
        &seller.token,
        (&par_listings, per),
        &shares,
        &body,
        args.job_timeout,
    )
    .await?;
    let end = pair(&targets)?;

    let all_ids: Vec<Uuid> = seq_uploads
        .iter()
        .chain(&par_uploads)
        .filter_map(|u| u.image_id)
        .collect();
    let all_rows = rows(pool, &all_ids).await?;
    let served = served(&api, &seller.token, &seq_listings, &all_rows).await;
    let mut unexpected = Vec::new();
    for u in seq_uploads.iter().chain(&par_uploads) {
        let line = match (&u.error, u.image_id.and_then(|id| all_rows.get(&id))) {
            (Some(e), _) => format!("upload {} {e}", u.status),
            (None, Some(r)) if r.status != "ready" => format!(
                "image {} {} (job {:?} {:?})",
                r.id, r.status, r.job_status, r.error_code
            ),
            _ => continue,
        };
        if !unexpected.contains(&line) && unexpected.len() < 10 {
            unexpected.push(line);
        }
    }
    let wrong_size = all_rows
        .values()
        .filter(|r| r.status == "ready")
        .filter(|r| (r.width, r.height) != (Some(photo.width as i32), Some(photo.height as i32)))
        .count();

    let config = ImagesConfig {
        api: args.api.clone(),
        api_pid: targets.api,
        worker_pid: targets.worker,
        worker_metrics: args.worker_metrics.clone(),
        sequential_images: n_seq,
        parallel_uploaders: uploaders,
        parallel_images: n_par,
        listings: n_listings,
        images_per_listing: per,
        poll_interval_ms: POLL.as_secs_f64() * 1000.0,
        server_env: SERVER_ENV
            .iter()
            .chain(IMAGE_ENV)
            .filter_map(|k| Some((k.to_string(), std::env::var(k).ok()?)))
            .collect(),
        label: args.label.clone(),
    };
    let checks = checks(
        &photo,
        &sequential,
        &parallel,
        wrong_size,
        &served,
        config.worker_metrics.is_some(),
    );
    let summary = ImagesSummary {
        scenario: "images".into(),
        started_at: started_at.to_rfc3339(),
        config,
        photo,
        setup_s,
        warmup,
        sequential,
        parallel,
        memory: ImagesMemory {
            idle,
            after_sequential,
            end,
        },
        served,
        unexpected,
        checks,
    };
    print(&summary);
    let stamp = started_at.format("%Y%m%dT%H%M%S%.3fZ").to_string();
    std::fs::create_dir_all(&args.out_dir)
        .with_context(|| format!("failed to create {}", args.out_dir.display()))?;
    let path = args.out_dir.join(format!("images-{stamp}.json"));
    std::fs::write(&path, serde_json::to_string_pretty(&summary)? + "\n")
        .with_context(|| format!("failed to write {}", path.display()))?;
    Ok(path)
}
/// Phase 1: `n` uploads one at a time, each followed until its image is final.
#[expect(clippy::too_many_arguments)]
async fn sequential(
    api: &Api,
    pool: &PgPool,
    meters: &Meters,
    targets: &Targets,
    token: &str,
    (listings, per): (&[Uuid], usize),
    n: usize,
    body: &[u8],
    known: &mut Known,
    timeout: Duration,
) -> anyhow::Result<(Sequential, Vec<Upload>)> {
    let before = procstat::sample(targets);
    let mut uploads = Vec::with_capacity(n);
    let mut ambiguous = 0;
    for i in 0..n {
        let api_before = meters.api_uploads().await?;
        let worker_before = meters.worker_jobs().await?;
        let mut u = upload(api, token, listings[i / per], body, known).await;
        // Polled first, so that the scrapes do not delay seeing it ready; nothing else calls
        // the api meanwhile.
        if let Some(id) = u.image_id {
            u.seen_final = wait_final(pool, id, timeout).await?;
        }
        let api_after = meters.api_after(api_before.count + 1).await?;
        if api_after.count == api_before.count + 1 {
            u.api_ms = Some((api_after.sum - api_before.sum) * 1000.0);
        }
        if u.image_id.is_some()
            && let Some(wb) = worker_before
            && let Some(wa) = meters.worker_after(wb.count + 1).await?
        {
            let deliveries = wa.count - wb.count;
            u.worker_deliveries = Some(deliveries);
            if deliveries == 1 {
                u.worker_ms = Some((wa.sum - wb.sum) * 1000.0);
            } else {
                ambiguous += 1;
            }
        }
        eprint!(".");
        uploads.push(u);
    }
    eprintln!();
    let after = procstat::sample(targets);
    let cpu = procstat::usage(&before, &after, procstat::clock_ticks_per_sec());
    let ids: Vec<Uuid> = uploads.iter().filter_map(|u| u.image_id).collect();
    let rows = rows(pool, &ids).await?;

    let mut outcomes = BTreeMap::new();
    for u in &uploads {
        *outcomes.entry(outcome(u, &rows)).or_default() += 1;
    }
    let ready: Vec<(&Upload, &Row)> = uploads
        .iter()
        .filter_map(|u| Some((u, rows.get(&u.image_id?)?)))
        .filter(|(_, r)| r.status == "ready")
        .collect();
    let queued_to_ready = |r: &Row| Some(ms_between(r.created_at?, r.finished_at?));
    let first = uploads.iter().map(|u| u.sent).min();
    let last = ready.iter().filter_map(|(u, _)| u.seen_final).max();
    let latency_ms = SequentialLatencies {
        upload: lat(uploads
            .iter()
            .map(|u| (u.answered - u.sent).as_secs_f64() * 1000.0)),
        upload_in_api: lat(uploads.iter().filter_map(|u| u.api_ms)),
        queued_to_ready: lat(ready.iter().filter_map(|(_, r)| queued_to_ready(r))),
        upload_to_ready: lat(ready
            .iter()
            .filter_map(|(u, _)| Some((u.seen_final? - u.sent).as_secs_f64() * 1000.0))),
        worker_processing: lat(ready.iter().filter_map(|(u, _)| u.worker_ms)),
        queue_wait: lat(ready
            .iter()
            .filter_map(|(u, r)| Some((queued_to_ready(r)? - u.worker_ms?).max(0.0)))),
    };
    let s = Sequential {
        images: uploads.len(),
        accepted: ids.len(),
        ready: ready.len(),
        outcomes,
        retried: rows.values().filter(|r| r.attempts > Some(1)).count(),
        worker_samples_ambiguous: ambiguous,
        window_s: match (first, last) {
            (Some(a), Some(b)) => (b - a).as_secs_f64(),
            _ => 0.0,
        },
        latency_ms,
        cpu_per_image: cpu_per_image(&cpu, ready.len()),
        cpu_s: cpu,
    };
    Ok((s, uploads))
}

/// Phase 2: uploader `u` uploads `shares[u]` images to its own `listings[u]`, all uploaders at
/// once, each upload after the previous one's answer; measured until every image is final.
#[expect(clippy::too_many_arguments)]
async fn parallel(
    api: &Arc<Api>,
    pool: &PgPool,
    meters: &Meters,
    targets: &Targets,
    token: &str,
    (listings, per): (&[Vec<Uuid>], usize),
    shares: &[usize],
    body: &[u8],
    timeout: Duration,
) -> anyhow::Result<(Parallel, Vec<Upload>)> {
    let start = Arc::new(Barrier::new(shares.len() + 1));
    let body = Arc::new(body.to_vec());
    let tasks: Vec<_> = shares
        .iter()
        .zip(listings)
        .map(|(&share, mine)| {
            let (api, start, body) = (api.clone(), start.clone(), body.clone());
            let (token, mine) = (token.to_owned(), mine.clone());
            tokio::spawn(async move {
                let mut known = Known::default();
                let mut out = Vec::with_capacity(share);
                start.wait().await;
                for i in 0..share {
                    out.push(upload(&api, &token, mine[i / per], &body, &mut known).await);
                }
                out
            })
        })
        .collect();
    let worker_before = meters.worker_jobs().await?;
    let before = procstat::sample(targets);
    start.wait().await;
    let mut uploads = Vec::with_capacity(shares.iter().sum());
    for t in tasks {
        uploads.extend(t.await?);
    }
    let ids: Vec<Uuid> = uploads.iter().filter_map(|u| u.image_id).collect();
    let pending = wait_all(pool, &ids, timeout).await?;
    let after = procstat::sample(targets);
    if pending > 0 {
        eprintln!("  {pending} image(s) still pending after {timeout:?} without progress");
    }
    let worker_after = match worker_before {
        Some(wb) => meters.worker_after(wb.count + ids.len() as u64).await?,
        None => None,
    };
    let cpu = procstat::usage(&before, &after, procstat::clock_ticks_per_sec());
    let rows = rows(pool, &ids).await?;

    let mut outcomes = BTreeMap::new();
    for u in &uploads {
        *outcomes.entry(outcome(u, &rows)).or_default() += 1;
    }
    let ready: Vec<(&Upload, &Row)> = uploads
        .iter()
        .filter_map(|u| Some((u, rows.get(&u.image_id?)?)))
        .filter(|(_, r)| r.status == "ready")
        .collect();
    let finished: Vec<DateTime<Utc>> = ready.iter().filter_map(|(_, r)| r.finished_at).collect();
    let first_sent = uploads.iter().map(|u| u.sent).min();
    let first_sent_utc = uploads.iter().map(|u| u.sent_utc).min();
    let last_answered = uploads.iter().map(|u| u.answered).max();
    let mut p = Parallel {
        uploaders: shares.len(),
        images: uploads.len(),
        accepted: ids.len(),
        ready: ready.len(),
        outcomes,
        retried: rows.values().filter(|r| r.attempts > Some(1)).count(),
        upload_window_s: 0.0,
        uploads_per_s: 0.0,
        window_s: 0.0,
        images_per_s: 0.0,
        steady_images_per_s: 0.0,
        latency_ms: ParallelLatencies {
            upload: lat(uploads
                .iter()
                .map(|u| (u.answered - u.sent).as_secs_f64() * 1000.0)),
            queued_to_ready: lat(ready
                .iter()
                .filter_map(|(_, r)| Some(ms_between(r.created_at?, r.finished_at?)))),
            upload_to_ready: lat(ready
                .iter()
                .filter_map(|(u, r)| Some(ms_between(u.sent_utc, r.finished_at?)))),
        },
        worker_deliveries: None,
        worker_processing_mean_ms: None,
        cpu_per_image: cpu_per_image(&cpu, ready.len()),
        cpu_s: cpu,
    };
    if let (Some(a), Some(b)) = (first_sent, last_answered) {
        p.upload_window_s = (b - a).as_secs_f64();
        p.uploads_per_s = per_s(uploads.len() as f64, p.upload_window_s);
    }
    if let (Some(a), Some(first), Some(last)) = (
        first_sent_utc,
        finished.iter().min().copied(),
        finished.iter().max().copied(),
    ) {
        p.window_s = ms_between(a, last) / 1000.0;
        p.images_per_s = per_s(ready.len() as f64, p.window_s);
        p.steady_images_per_s = per_s(
            ready.len().saturating_sub(1) as f64,
            ms_between(first, last) / 1000.0,
        );
    }
    if let (Some(wb), Some(wa)) = (worker_before, worker_after) {
        let deliveries = wa.count - wb.count;
        p.worker_deliveries = Some(deliveries);
        if deliveries > 0 {
            p.worker_processing_mean_ms = Some((wa.sum - wb.sum) * 1000.0 / deliveries as f64);
        }
    }
    Ok((p, uploads))
}

fn webp_size(bytes: &[u8]) -> Option<(u32, u32)> {
    let is_webp = bytes.len() > 12 && &bytes[..4] == b"RIFF" && &bytes[8..12] == b"WEBP";
    if !is_webp {
        return None;
    }
    image::ImageReader::with_format(Cursor::new(bytes), image::ImageFormat::WebP)
        .into_dimensions()
        .ok()
}

/// Fetches the renditions of the first image of `listings[0]` as a browser would.
async fn served(api: &Api, token: &str, listings: &[Uuid], rows: &HashMap<Uuid, Row>) -> Served {
    let mut s = Served {
        original_stored_bytes: rows
            .values()
            .find(|r| r.status == "ready")
            .map_or(0, |r| i64::from(r.byte_size)),
        ..Served::default()
    };
    let fetched = async {
        let listing = listings.first().context("no listing")?;
        let urls = api.image_urls(token, *listing).await?;
        let Some((Some(large), Some(thumb))) =
            urls.into_iter().find(|u| u.0.is_some() && u.1.is_some())
        else {
            bail!("no ready image with both URLs");
        };
        anyhow::Ok((api.get_bytes(&large).await?, api.get_bytes(&thumb).await?))
    }
    .await;
    match fetched {
        Ok((large, thumb)) => {
            s.large_bytes = large.len();
            s.large_size = webp_size(&large);
            s.thumb_bytes = thumb.len();
            s.thumb_size = webp_size(&thumb);
            s.both_webp = s.large_size.is_some() && s.thumb_size.is_some();
        }
        Err(e) => s.error = Some(format!("{e:#}")),
    }
    s
}

fn checks(
    photo: &Photo,
    seq: &Sequential,
    par: &Parallel,
    wrong_size: usize,
    served: &Served,
    worker_metrics: bool,
) -> Vec<Check> {
    let images = seq.images + par.images;
    let accepted = seq.accepted + par.accepted;
    let ready = seq.ready + par.ready;
    let mut c = vec![
        check(
            "test picture",
            &format!(
                "a JPEG of {}-{} bytes, within IMAGE_MAX_BYTES' default {}",
                photo::MIN_BYTES,
                photo::MAX_BYTES,
                photo::LIMIT_BYTES
            ),
            format!(
                "{} bytes, {} x {} px",
                photo.byte_size, photo.width, photo.height
            ),
            photo.byte_size <= photo::LIMIT_BYTES,
        ),
        check(
            "every upload accepted",
            &format!("{images} x 201"),
            format!("{accepted} accepted"),
            accepted == images,
        ),
        check(
            "every image ready, at its size, on the first attempt",
            &format!("{images} ready, {} x {} px", photo.width, photo.height),
            format!(
                "{ready} ready ({:?} / {:?}), {wrong_size} with another size, {} retried",
                seq.outcomes,
                par.outcomes,
                seq.retried + par.retried
            ),
            ready == images && wrong_size == 0 && seq.retried + par.retried == 0,
        ),
        check(
            "renditions served as WebP",
            "display and thumbnail decode as WebP",
            match &served.error {
                Some(e) => e.clone(),
                None => format!(
                    "display {:?} {} B, thumbnail {:?} {} B",
                    served.large_size, served.large_bytes, served.thumb_size, served.thumb_bytes
                ),
            },
            served.both_webp,
        ),
    ];
    if worker_metrics {
        let n = seq.latency_ms.worker_processing.count;
        c.push(check(
            "worker processing time measured",
            &format!("one sample per image ready one at a time ({})", seq.ready),
            format!("{n} samples, {} ambiguous", seq.worker_samples_ambiguous),
            n == seq.ready,
        ));
    }
    c
}

/// `n, p50, p95, max` of a figure.
fn spread(l: &Latency) -> String {
    if l.count == 0 {
        return "n=0 (not measured)".into();
    }
    format!(
        "n={} p50 {:.1} ms  p95 {:.1}  max {:.1}",
        l.count, l.p50_ms, l.p95_ms, l.max_ms
    )
}

fn headline(l: &Latency) -> String {
    if l.count == 0 {
        return "not measured".into();
    }
    format!(
        "p50 {:.0} ms (p95 {:.0}, max {:.0}; n={})",
        l.p50_ms, l.p95_ms, l.max_ms, l.count
    )
}

fn cpu_line(c: &CpuPerImage) -> String {
    format!(
        "api {:.0} ms + worker {:.0} ms = {:.0} ms (postgres {:.1}, with the bench's polling; redis {:.1})",
        c.api_ms, c.worker_ms, c.api_plus_worker_ms, c.postgres_ms, c.redis_ms
    )
}

fn print(s: &ImagesSummary) {
    let q = &s.sequential;
    let p = &s.parallel;
    let ql = &q.latency_ms;
    let pl = &p.latency_ms;
    let m = &s.memory;
    println!(
        "=== images ({} one at a time, then {} from {} uploaders; {:.2} MB JPEG, {} x {} px) ===",
        q.images,
        p.images,
        p.uploaders,
        s.photo.byte_size as f64 / 1e6,
        s.photo.width,
        s.photo.height
    );
    println!(
        "setup {:.1} s (picture {:.1} s); warm-up {}/{} image ready in {:.2} s; {} listings",
        s.setup_s,
        s.photo.generate_s,
        s.warmup.ready,
        s.warmup.uploads,
        s.warmup.wait_s,
        s.config.listings
    );
    println!(
        "one at a time: {}/{} ready {:?} in {:.1} s",
        q.ready, q.images, q.outcomes, q.window_s
    );
    println!("  upload (client)             {}", spread(&ql.upload));
    println!(
        "  upload in the api           {}",
        spread(&ql.upload_in_api)
    );
    println!(
        "  queued → ready (jobs row)   {}",
        spread(&ql.queued_to_ready)
    );
    println!(
        "  upload → ready seen         {}",
        spread(&ql.upload_to_ready)
    );
    println!(
        "  worker processing           {}",
        spread(&ql.worker_processing)
    );
    println!("  queue wait (derived)        {}", spread(&ql.queue_wait));
    println!("  cpu per image: {}", cpu_line(&q.cpu_per_image));
    println!(
        "throughput ({} uploaders): {}/{} ready {:?} in {:.2} s = {:.2} images/s ({:.2}/s first to last ready); uploads answered at {:.2}/s",
        p.uploaders,
        p.ready,
        p.images,
        p.outcomes,
        p.window_s,
        p.images_per_s,
        p.steady_images_per_s,
        p.uploads_per_s
    );
    println!("  upload (client)             {}", spread(&pl.upload));
    println!(
        "  queued → ready (jobs row)   {}",
        spread(&pl.queued_to_ready)
    );
    println!(
        "  upload → ready              {}",
        spread(&pl.upload_to_ready)
    );
    match (p.worker_processing_mean_ms, p.worker_deliveries) {
        (Some(mean), Some(d)) => {
            println!("  worker processing           mean {mean:.1} ms over {d} deliveries");
        }
        _ => println!("  worker processing           not measured"),
    }
    println!("  cpu per image: {}", cpu_line(&p.cpu_per_image));
    println!(
        "memory MiB: api peak {:.1} (rss {:.1}; idle rss {:.1}; peak after one at a time {:.1}), worker peak {:.1} (rss {:.1}; idle rss {:.1}; peak after one at a time {:.1})",
        m.end.api.peak_rss_mib,
        m.end.api.rss_mib,
        m.idle.api.rss_mib,
        m.after_sequential.api.peak_rss_mib,
        m.end.worker.peak_rss_mib,
        m.end.worker.rss_mib,
        m.idle.worker.rss_mib,
        m.after_sequential.worker.peak_rss_mib
    );
    let v = &s.served;
    println!(
        "stored: original {} B (metadata stripped); display {:?} {} B, thumbnail {:?} {} B",
        v.original_stored_bytes, v.large_size, v.large_bytes, v.thumb_size, v.thumb_bytes
    );
    for (phase, cpu) in [("one at a time", &q.cpu_s), ("throughput", &p.cpu_s)] {
        if cpu.other_processes_s > 0.1 * cpu.machine_busy_s.max(0.1) {
            println!(
                "WARNING: other processes used {:.2} CPU s during {phase} (machine busy {:.2} s): the machine was shared, figures are noisy",
                cpu.other_processes_s, cpu.machine_busy_s
            );
        }
    }
    for u in &s.unexpected {
        println!("unexpected: {u}");
    }
    println!("figures for the record (no targets):");
    println!(
        "  processing time per 5 MB image {}",
        headline(&ql.worker_processing)
    );
    println!(
        "  time until ready (upload committed → ready) {}",
        headline(&ql.queued_to_ready)
    );
    println!("  upload latency {}", headline(&ql.upload));
    println!(
        "  throughput {:.2} images/s end to end with {} uploaders",
        p.images_per_s, p.uploaders
    );
    println!(
        "  CPU per image (api + worker) {:.0} ms one at a time, {:.0} ms with {} uploaders",
        q.cpu_per_image.api_plus_worker_ms, p.cpu_per_image.api_plus_worker_ms, p.uploaders
    );
    println!(
        "  worker peak RSS {:.1} MiB, api peak RSS {:.1} MiB",
        m.end.worker.peak_rss_mib, m.end.api.peak_rss_mib
    );
    for c in &s.checks {
        let mark = if c.pass { "PASS" } else { "FAIL" };
        println!("  [{mark}] {}: {} (target {})", c.name, c.value, c.target);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SCRAPE: &str = "\
# TYPE job_duration_seconds histogram
job_duration_seconds_bucket{kind=\"process_image\",le=\"0.5\"} 1
job_duration_seconds_sum{kind=\"process_image\"} 1.25
job_duration_seconds_count{kind=\"process_image\"} 2
job_duration_seconds_sum{kind=\"checkout\"} 9
job_duration_seconds_sum_other{kind=\"process_image\"} 7
http_request_duration_seconds_sum{route=\"upload_listing_images\",method=\"POST\"} 0.5
http_request_duration_seconds_count{route=\"upload_listing_images\",method=\"POST\"} 1
";

    #[test]
    fn histograms_are_read_by_name_and_labels() {
        let h = hist(SCRAPE, "job_duration_seconds", &[("kind", "process_image")]);
        assert_eq!(
            h,
            Hist {
                sum: 1.25,
                count: 2
            }
        );
        let api = hist(
            SCRAPE,
            "http_request_duration_seconds",
            &[("route", UPLOAD_ROUTE), ("method", "POST")],
        );
        assert_eq!(api, Hist { sum: 0.5, count: 1 });
        assert_eq!(
            hist(SCRAPE, "job_duration_seconds", &[("kind", "refund_order")]),
            Hist::default()
        );
    }

    #[test]
    fn the_new_image_is_the_one_not_seen_before() {
        let (listing, a, b) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
        let mut known = Known::default();
        assert_eq!(known.new_one(listing, &[a]), Some(a));
        assert_eq!(known.new_one(listing, &[a, b]), Some(b));
        assert_eq!(known.new_one(listing, &[a, b]), None);
    }

    #[test]
    fn the_multipart_body_wraps_the_file_once() {
        let body = client::upload_body(b"\xff\xd8jpeg\xff\xd9").unwrap();
        let text = String::from_utf8_lossy(&body);
        assert!(text.contains("name=\"files\""), "{text}");
        assert!(text.ends_with("--\r\n"), "{text}");
        assert!(webp_size(b"not a webp").is_none());
    }
}
