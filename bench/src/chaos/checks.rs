//! After the drill: every invariant, read from PostgreSQL (the truth), the fake Stripe's
//! records and what the clients saw; and the recovery figures per fault.

use std::collections::{BTreeMap, HashMap, HashSet};

use anyhow::Context;
use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgPool;
use uuid::Uuid;

use super::{
    faults::Fault,
    load::{Flow, Probe, RequestError, Requests},
    stripe_fake::{Call, Intent},
};
use crate::report::Check;

/// How long after a fault every job (and payment event) it hit must be final.
pub(crate) const RECOVERY_BOUND_S: f64 = 60.0;

fn check(name: impl Into<String>, target: &str, value: String, pass: bool) -> Check {
    Check {
        name: name.into(),
        target: target.into(),
        value,
        pass,
    }
}

fn count<K: Ord>(map: &mut BTreeMap<K, usize>, key: K) {
    *map.entry(key).or_default() += 1;
}

/// What the clients did, in numbers.
#[derive(Debug, Clone, Serialize, Default)]
pub(crate) struct ClientFigures {
    pub checkouts: usize,
    /// Turns that never got to the checkout: the cart could not be filled.
    pub empty_carts: u64,
    /// Final answer to `POST /checkout` (`0`: none before the deadline) → count.
    pub checkout_answers: BTreeMap<u16, usize>,
    /// `error.code` of the refusals → count.
    pub refusals: BTreeMap<String, usize>,
    /// Checkouts that needed more than one attempt (a 5xx or no answer first).
    pub checkouts_retried: usize,
    /// How the accepted checkouts' jobs ended, as the clients saw it.
    pub jobs: BTreeMap<String, usize>,
    pub replays: usize,
    pub replays_other_job: Vec<String>,
    pub payments: usize,
    pub payments_acked: usize,
    pub webhook_deliveries: u64,
    /// Non-2xx answers to deliveries by status (`0`: no answer) → count.
    pub webhook_refusals: BTreeMap<u16, u32>,
    /// Ack body status → count.
    pub ack_details: BTreeMap<String, usize>,
    pub anomalies: Vec<String>,
}

pub(crate) fn client_figures(flows: &[Flow], empty_carts: u64) -> ClientFigures {
    let mut f = ClientFigures {
        checkouts: flows.len(),
        empty_carts,
        ..ClientFigures::default()
    };
    for flow in flows {
        count(&mut f.checkout_answers, flow.checkout_status);
        if let Some(r) = &flow.refusal {
            count(&mut f.refusals, r.clone());
        }
        f.checkouts_retried += usize::from(flow.checkout_attempts > 1);
        if let Some(s) = &flow.job_status {
            count(&mut f.jobs, s.clone());
        }
        if let Some(replay) = &flow.replay {
            f.replays += 1;
            match replay {
                Ok(job) if Some(*job) == flow.job_id => {}
                Ok(job) => f.replays_other_job.push(format!(
                    "key {}: job {job}, first {:?}",
                    flow.key, flow.job_id
                )),
                Err(e) => f.replays_other_job.push(format!("key {}: {e}", flow.key)),
            }
        }
        if let Some(p) = &flow.payment {
            f.payments += 1;
            f.payments_acked += usize::from(p.acked);
            f.webhook_deliveries += u64::from(p.deliveries);
            for (status, n) in &p.refused {
                *f.webhook_refusals.entry(*status).or_default() += n;
            }
            if let Some(d) = &p.ack_detail {
                count(&mut f.ack_details, d.clone());
            }
        }
        if let Some(a) = &flow.anomaly {
            f.anomalies.push(a.clone());
        }
    }
    f
}

/// A job's or event's life, for the recovery figures.
#[derive(sqlx::FromRow)]
struct Life {
    id: String,
    attempts: i32,
    created: DateTime<Utc>,
    finished: Option<DateTime<Utc>>,
}

/// The hit job (or event) that took longest, for telling what held it up.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Slowest {
    pub id: String,
    pub attempts: i32,
    /// Seconds from the fault's start to its creation (negative: before) and to its end.
    pub created_s: f64,
    pub final_s: f64,
}

impl Slowest {
    fn describe(&self) -> String {
        format!(
            "{} (created {:+.1} s from the fault, {} attempts)",
            self.id, self.created_s, self.attempts
        )
    }
}

/// What one fault did to the work in flight.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Recovery {
    pub fault: &'static str,
    pub at_t: f64,
    /// Not final at the fault, or created before it was over.
    pub jobs_hit: usize,
    pub jobs_in_flight_at_fault: usize,
    /// Fault → the last of them final (seconds); `None` when none was hit.
    pub jobs_max_s: Option<f64>,
    pub jobs_not_final: usize,
    pub slowest_job: Option<Slowest>,
    pub events_hit: usize,
    pub events_max_s: Option<f64>,
    pub events_not_processed: usize,
    pub slowest_event: Option<Slowest>,
}

/// What a fault hit: (hit, in flight at the fault, longest fault → final, never final, the
/// slowest of them).
type Hit = (usize, usize, Option<f64>, usize, Option<Slowest>);

fn hit(lives: &[Life], fault: &Fault) -> Hit {
    let mut n = 0;
    let mut in_flight = 0;
    let mut max: Option<f64> = None;
    let mut open = 0;
    let mut slowest = None;
    let secs = |t: DateTime<Utc>| (t - fault.start).num_milliseconds() as f64 / 1000.0;
    for l in lives {
        let hit = l.created <= fault.end && l.finished.is_none_or(|f| f > fault.start);
        if !hit {
            continue;
        }
        n += 1;
        in_flight += usize::from(l.created <= fault.start);
        match l.finished {
            Some(f) => {
                let s = secs(f);
                if max.is_none_or(|m| s > m) {
                    max = Some(s);
                    slowest = Some(Slowest {
                        id: l.id.clone(),
                        attempts: l.attempts,
                        created_s: secs(l.created),
                        final_s: s,
                    });
                }
            }
            None => open += 1,
        }
    }
    (n, in_flight, max, open, slowest)
}

pub(crate) async fn recovery(pool: &PgPool, faults: &[Fault]) -> anyhow::Result<Vec<Recovery>> {
    let jobs: Vec<Life> = sqlx::query_as(
        "SELECT kind || ' ' || id AS id, attempts, created_at AS created,
                CASE WHEN status IN ('succeeded', 'failed') THEN COALESCE(finished_at, updated_at) END AS finished
         FROM jobs",
    )
    .fetch_all(pool)
    .await
    .context("failed to read the jobs")?;
    let events: Vec<Life> = sqlx::query_as(
        "SELECT id, attempts, received_at AS created, processed_at AS finished FROM webhook_events",
    )
    .fetch_all(pool)
    .await
    .context("failed to read the webhook events")?;
    Ok(faults
        .iter()
        .map(|f| {
            let (jobs_hit, jobs_in_flight_at_fault, jobs_max_s, jobs_not_final, slowest_job) =
                hit(&jobs, f);
            let (events_hit, _, events_max_s, events_not_processed, slowest_event) =
                hit(&events, f);
            Recovery {
                fault: f.name,
                at_t: f.start_t,
                jobs_hit,
                jobs_in_flight_at_fault,
                jobs_max_s,
                jobs_not_final,
                slowest_job,
                events_hit,
                events_max_s,
                events_not_processed,
                slowest_event,
            }
        })
        .collect())
}

/// Failed requests in one fault's window (from the fault until the next one).
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Window {
    pub name: String,
    pub from_t: f64,
    pub to_t: f64,
    pub requests: u64,
    /// Status → count (`0`: no answer: connection refused or reset, timeout).
    pub errors: BTreeMap<u16, usize>,
    /// Route → failed requests.
    pub by_route: BTreeMap<&'static str, usize>,
    /// Seconds from the window's start to its last failed request.
    pub last_error_after_s: Option<f64>,
}

pub(crate) fn windows(faults: &[Fault], requests: &Requests, end_t: f64) -> Vec<Window> {
    let errors: Vec<RequestError> = requests.errors();
    let mut bounds: Vec<(String, f64)> = vec![("before the first fault".into(), f64::MIN)];
    bounds.extend(faults.iter().map(|f| (f.name.to_owned(), f.start_t)));
    (0..bounds.len())
        .map(|i| {
            let (name, from) = bounds[i].clone();
            let to = bounds.get(i + 1).map_or(end_t, |b| b.1);
            let mut w = Window {
                name,
                from_t: from.max(0.0),
                to_t: to,
                requests: requests.sent_between(from.max(0.0), to),
                errors: BTreeMap::new(),
                by_route: BTreeMap::new(),
                last_error_after_s: None,
            };
            for e in errors.iter().filter(|e| e.t >= from && e.t < to) {
                count(&mut w.errors, e.status);
                count(&mut w.by_route, e.route);
                w.last_error_after_s = Some(e.t - w.from_t);
            }
            w
        })
        .collect()
}

/// When `/health/ready` stopped and resumed answering 200 around the PostgreSQL restart.
#[derive(Debug, Clone, Serialize, Default)]
pub(crate) struct ReadinessFlip {
    pub restart_t: Option<f64>,
    /// Probes sent from the restart until it was over and 5 s more (or the next fault).
    pub probes: Vec<Probe>,
    /// First non-200 (or no answer within 1 s) among them, and its status (`0`: no answer).
    pub not_ready_t: Option<f64>,
    pub not_ready_status: Option<u16>,
    /// First 200 after that.
    pub ready_again_t: Option<f64>,
}

pub(crate) fn readiness_flip(
    probes: &[Probe],
    pg_restart: Option<&Fault>,
    next_fault_t: Option<f64>,
) -> ReadinessFlip {
    let mut flip = ReadinessFlip {
        restart_t: pg_restart.map(|f| f.start_t),
        ..ReadinessFlip::default()
    };
    let Some(f) = pg_restart else {
        return flip;
    };
    // A probe sent just before the restart may be the one that waits through it.
    let from = f.start_t - 0.3;
    let until = (f.end_t + 5.0).min(next_fault_t.unwrap_or(f64::MAX));
    flip.probes = probes
        .iter()
        .filter(|p| p.t >= from && p.t < until)
        .copied()
        .collect();
    for p in &flip.probes {
        match (flip.not_ready_t, p.status) {
            (None, s) if s != 200 => {
                flip.not_ready_t = Some(p.t);
                flip.not_ready_status = Some(s);
            }
            (Some(_), 200) => {
                flip.ready_again_t = Some(p.t);
                break;
            }
            _ => {}
        }
    }
    // Back to 200 after the window (the next fault aside) also counts as back.
    if flip.not_ready_t.is_some() && flip.ready_again_t.is_none() {
        let after = flip.not_ready_t.unwrap_or_default();
        flip.ready_again_t = probes
            .iter()
            .find(|p| p.t > after && p.status == 200 && next_fault_t.is_none_or(|n| p.t < n))
            .map(|p| p.t);
    }
    flip
}

/// Everything read from PostgreSQL after the drill.
#[derive(Debug, Clone, Serialize, Default)]
pub(crate) struct Database {
    pub jobs_by_status: BTreeMap<String, i64>,
    pub checkout_jobs_failed_by_code: BTreeMap<String, i64>,
    pub jobs_retried: i64,
    pub succeeded_checkout_jobs: i64,
    pub orders: i64,
    pub orders_by_status: BTreeMap<String, i64>,
    pub orders_of_succeeded_jobs: i64,
    pub succeeded_jobs_without_order: i64,
    pub failed_jobs_with_open_order: i64,
    pub orders_without_job: i64,
    pub keys_with_two_jobs: i64,
    pub keys_with_two_orders: i64,
    pub unprocessed_webhook_events: i64,
    pub webhook_events: i64,
    pub webhook_events_with_note: BTreeMap<String, i64>,
    /// Acknowledged payments whose order is not `paid`.
    pub acked_not_paid: Vec<String>,
    pub paid_orders: i64,
    pub paid_orders_not_settled_by_exactly_one_event: i64,
    pub paid_lines: i64,
    pub paid_lines_sale_wrong: i64,
    pub paid_lines_fee_wrong: i64,
    pub ledger_entries_of_unpaid_orders: i64,
    pub ledger_entries_other: i64,
    pub listings: Vec<ListingStock>,
    pub orders_with_intent: i64,
    /// Jobs still queued or running, and events still unprocessed: what they look like.
    pub open_jobs: Vec<String>,
    pub open_events: Vec<String>,
}

/// One listing's stock against what it was sold.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub(crate) struct ListingStock {
    pub id: Uuid,
    pub quantity: i32,
    pub reserved: i32,
    pub pending_units: i64,
    pub paid_units: i64,
    #[sqlx(skip)]
    pub initial: i64,
}

fn map(rows: Vec<(String, i64)>) -> BTreeMap<String, i64> {
    rows.into_iter().collect()
}

pub(crate) async fn database(
    pool: &PgPool,
    flows: &[Flow],
    initial: &HashMap<Uuid, i64>,
    fee_bps: i64,
) -> anyhow::Result<Database> {
    let mut d = Database {
        jobs_by_status: map(
            sqlx::query_as("SELECT status, count(*) FROM jobs GROUP BY 1")
                .fetch_all(pool)
                .await?,
        ),
        checkout_jobs_failed_by_code: map(sqlx::query_as(
            "SELECT COALESCE(error_code, '?'), count(*) FROM jobs
                 WHERE kind = 'checkout' AND status = 'failed' GROUP BY 1",
        )
        .fetch_all(pool)
        .await?),
        jobs_retried: sqlx::query_scalar("SELECT count(*) FROM jobs WHERE attempts > 1")
            .fetch_one(pool)
            .await?,
        orders_by_status: map(
            sqlx::query_as("SELECT status, count(*) FROM orders GROUP BY 1")
                .fetch_all(pool)
                .await?,
        ),
        ..Database::default()
    };
    d.orders = d.orders_by_status.values().sum();
    (
        d.succeeded_checkout_jobs,
        d.orders_of_succeeded_jobs,
        d.succeeded_jobs_without_order,
        d.failed_jobs_with_open_order,
    ) = sqlx::query_as(
        "SELECT count(*) FILTER (WHERE j.status = 'succeeded'),
                count(o.id) FILTER (WHERE j.status = 'succeeded'),
                count(*) FILTER (WHERE j.status = 'succeeded' AND o.id IS NULL),
                count(*) FILTER (WHERE j.status = 'failed' AND o.id IS NOT NULL AND o.status <> 'cancelled')
         FROM jobs j LEFT JOIN orders o ON o.checkout_job_id = j.id
         WHERE j.kind = 'checkout'",
    )
    .fetch_one(pool)
    .await?;
    d.orders_without_job =
        sqlx::query_scalar("SELECT count(*) FROM orders WHERE checkout_job_id IS NULL")
            .fetch_one(pool)
            .await?;
    d.keys_with_two_jobs = sqlx::query_scalar(
        "SELECT count(*) FROM (SELECT 1 FROM jobs WHERE kind = 'checkout'
                               GROUP BY owner_id, idempotency_key HAVING count(*) > 1) d",
    )
    .fetch_one(pool)
    .await?;
    d.keys_with_two_orders = sqlx::query_scalar(
        "SELECT count(*) FROM (SELECT 1 FROM orders o JOIN jobs j ON j.id = o.checkout_job_id
                               GROUP BY j.owner_id, j.idempotency_key HAVING count(*) > 1) d",
    )
    .fetch_one(pool)
    .await?;
    (d.webhook_events, d.unprocessed_webhook_events) = sqlx::query_as(
        "SELECT count(*), count(*) FILTER (WHERE processed_at IS NULL) FROM webhook_events",
    )
    .fetch_one(pool)
    .await?;
    d.webhook_events_with_note = map(sqlx::query_as(
        "SELECT left(error, 120), count(*) FROM webhook_events WHERE error IS NOT NULL GROUP BY 1",
    )
    .fetch_all(pool)
    .await?);

    let acked: Vec<Uuid> = flows
        .iter()
        .filter(|f| f.payment.as_ref().is_some_and(|p| p.acked))
        .filter_map(|f| f.order_id)
        .collect();
    let not_paid: Vec<(Uuid, String)> = sqlx::query_as(
        "SELECT a.id, COALESCE(o.status, 'missing') FROM unnest($1::uuid[]) AS a(id)
         LEFT JOIN orders o ON o.id = a.id
         WHERE o.status IS DISTINCT FROM 'paid' OR o.paid_at IS NULL",
    )
    .bind(&acked)
    .fetch_all(pool)
    .await?;
    d.acked_not_paid = not_paid
        .into_iter()
        .map(|(id, status)| format!("{id}: {status}"))
        .collect();
    d.paid_orders = d.orders_by_status.get("paid").copied().unwrap_or_default();
    d.paid_orders_not_settled_by_exactly_one_event = sqlx::query_scalar(
        "SELECT count(*) FROM orders o
         WHERE o.status = 'paid'
           AND (SELECT count(*) FROM webhook_events e
                WHERE e.object_id = o.payment_intent_id
                  AND e.processed_at IS NOT NULL AND e.error IS NULL) <> 1",
    )
    .fetch_one(pool)
    .await?;
    (d.paid_lines, d.paid_lines_sale_wrong, d.paid_lines_fee_wrong, d.ledger_entries_other) =
        sqlx::query_as(
            "WITH lines AS (
                 SELECT ol.id, ol.unit_price_cents * ol.quantity AS total FROM order_lines ol
                 JOIN orders o ON o.id = ol.order_id WHERE o.status = 'paid'),
             per_line AS (
                 SELECT l.id,
                        count(*) FILTER (WHERE e.kind = 'sale') AS sales,
                        count(*) FILTER (WHERE e.kind = 'sale' AND e.amount_cents = l.total) AS sales_right,
                        count(*) FILTER (WHERE e.kind = 'platform_fee') AS fees,
                        count(*) FILTER (WHERE e.kind = 'platform_fee'
                                           AND e.amount_cents = -((l.total * $1) / 10000)) AS fees_right,
                        count(*) FILTER (WHERE e.kind NOT IN ('sale', 'platform_fee')) AS other
                 FROM lines l LEFT JOIN ledger_entries e ON e.order_line_id = l.id
                 GROUP BY l.id)
             SELECT count(*),
                    count(*) FILTER (WHERE sales <> 1 OR sales_right <> 1),
                    count(*) FILTER (WHERE fees <> 1 OR fees_right <> 1),
                    COALESCE(sum(other), 0)::bigint
             FROM per_line",
        )
        .bind(fee_bps)
        .fetch_one(pool)
        .await?;
    d.ledger_entries_of_unpaid_orders = sqlx::query_scalar(
        "SELECT count(*) FROM ledger_entries e JOIN orders o ON o.id = e.order_id
         WHERE o.status <> 'paid'",
    )
    .fetch_one(pool)
    .await?;
    let ids: Vec<Uuid> = initial.keys().copied().collect();
    let mut listings: Vec<ListingStock> = sqlx::query_as(
        "SELECT l.id, l.quantity, l.reserved,
                COALESCE(sum(ol.quantity) FILTER (WHERE o.status = 'pending_payment'), 0)::bigint AS pending_units,
                COALESCE(sum(ol.quantity) FILTER (WHERE o.status = 'paid'), 0)::bigint AS paid_units
         FROM listings l
         LEFT JOIN order_lines ol ON ol.listing_id = l.id
         LEFT JOIN orders o ON o.id = ol.order_id
         WHERE l.id = ANY($1)
         GROUP BY l.id ORDER BY l.id",
    )
    .bind(&ids)
    .fetch_all(pool)
    .await?;
    for l in &mut listings {
        l.initial = initial.get(&l.id).copied().unwrap_or_default();
    }
    d.listings = listings;
    d.orders_with_intent =
        sqlx::query_scalar("SELECT count(*) FROM orders WHERE payment_intent_id IS NOT NULL")
            .fetch_one(pool)
            .await?;
    d.open_jobs = sqlx::query_scalar(
        "SELECT format('%s %s %s, attempt %s, lease %s, last change %s s ago%s',
                       kind, id, status, attempts,
                       COALESCE(round(extract(epoch FROM lease_expires_at - now()))::text || ' s left', 'none'),
                       round(extract(epoch FROM now() - updated_at)),
                       COALESCE(', ' || error_code || ': ' || left(error_message, 120), ''))
         FROM jobs WHERE status IN ('queued', 'running') ORDER BY created_at LIMIT 20",
    )
    .fetch_all(pool)
    .await?;
    d.open_events = sqlx::query_scalar(
        "SELECT format('%s (%s) received %s s ago, %s attempts%s', id, event_type,
                       round(extract(epoch FROM now() - received_at)), attempts,
                       COALESCE(', last error: ' || left(error, 120), ''))
         FROM webhook_events WHERE processed_at IS NULL ORDER BY received_at LIMIT 20",
    )
    .fetch_all(pool)
    .await?;
    Ok(d)
}

/// The fake Stripe's records against the orders.
#[derive(Debug, Clone, Serialize, Default)]
pub(crate) struct StripeFigures {
    /// `METHOD path-pattern` → calls.
    pub calls: BTreeMap<String, usize>,
    pub posts_without_key: Vec<String>,
    pub idempotency_errors: usize,
    pub intents_created: usize,
    /// Distinct keys of create requests that made an intent.
    pub create_keys: usize,
    /// Create requests answered with the stored answer of an earlier one (same key).
    pub create_replays: usize,
    /// Keys whose create requests were answered with different intents.
    pub keys_with_two_intents: usize,
    /// Orders (by `metadata.order_id`) with more than one intent.
    pub orders_with_two_intents: Vec<String>,
    /// Orders whose stored `payment_intent_id` is not the one intent Stripe made for them.
    pub orders_intent_wrong: Vec<String>,
    /// Intents made for an order that did not keep it.
    pub intents_not_kept: usize,
}

pub(crate) async fn stripe(
    pool: &PgPool,
    calls: &[Call],
    intents: &[Intent],
) -> anyhow::Result<StripeFigures> {
    let mut s = StripeFigures {
        intents_created: intents.len(),
        ..StripeFigures::default()
    };
    let mut answers_by_key: HashMap<&str, HashSet<&str>> = HashMap::new();
    for c in calls {
        let pattern = if c.path.starts_with("/v1/payment_intents/") {
            if c.path.ends_with("/cancel") {
                "/v1/payment_intents/{id}/cancel"
            } else {
                "/v1/payment_intents/{id}"
            }
        } else {
            c.path.as_str()
        };
        count(&mut s.calls, format!("{} {pattern} {}", c.method, c.status));
        if c.method == "POST" && c.idempotency_key.is_none() {
            s.posts_without_key.push(format!("{} {}", c.method, c.path));
        }
        s.idempotency_errors += usize::from(c.idempotency_conflict);
        if c.method == "POST" && c.path == "/v1/payment_intents" {
            s.create_replays += usize::from(c.replayed);
            if let (Some(k), Some(i)) = (&c.idempotency_key, &c.intent) {
                answers_by_key.entry(k).or_default().insert(i);
            }
        }
    }
    s.create_keys = answers_by_key.len();
    s.keys_with_two_intents = answers_by_key.values().filter(|v| v.len() > 1).count();
    let mut by_order: HashMap<&str, Vec<&str>> = HashMap::new();
    for i in intents {
        by_order
            .entry(i.fields.order_id.as_str())
            .or_default()
            .push(i.fields.id.as_str());
    }
    s.orders_with_two_intents = by_order
        .iter()
        .filter(|(_, v)| v.len() > 1)
        .map(|(o, v)| format!("{o}: {v:?}"))
        .collect();
    let orders: Vec<(Uuid, Option<String>)> =
        sqlx::query_as("SELECT id, payment_intent_id FROM orders")
            .fetch_all(pool)
            .await?;
    for (id, stored) in &orders {
        let made = by_order.get(id.to_string().as_str());
        match (stored, made) {
            (Some(stored), Some(made)) if made.len() == 1 && made[0] == stored => {}
            (None, None) => {}
            (None, Some(made)) => s.intents_not_kept += made.len(),
            (stored, made) => s
                .orders_intent_wrong
                .push(format!("{id}: stored {stored:?}, Stripe made {made:?}")),
        }
    }
    Ok(s)
}

/// Every PASS/FAIL line.
#[expect(
    clippy::too_many_arguments,
    reason = "one call site, each input a different source"
)]
pub(crate) fn checks(
    c: &ClientFigures,
    d: &Database,
    s: &StripeFigures,
    recovery: &[Recovery],
    flip: &ReadinessFlip,
    windows: &[Window],
    exits: &[(String, String)],
    faults: &[Fault],
) -> Vec<Check> {
    let mut out = Vec::new();
    let accepted = c.checkout_answers.get(&202).copied().unwrap_or_default();
    out.push(check(
        "load",
        "checkouts accepted and payments acknowledged under the faults",
        format!(
            "{} checkouts ({} turns without a cart): answers {:?}, refusals {:?}, {} retried after a 5xx or no answer; jobs {:?}; {} payments, {} acknowledged after {} deliveries (refused {:?})",
            c.checkouts,
            c.empty_carts,
            c.checkout_answers,
            c.refusals,
            c.checkouts_retried,
            c.jobs,
            c.payments,
            c.payments_acked,
            c.webhook_deliveries,
            c.webhook_refusals
        ),
        accepted > 0 && c.payments_acked > 0,
    ));
    let odd_answers: BTreeMap<u16, usize> = c
        .checkout_answers
        .iter()
        .filter(|(s, _)| !matches!(s, 202 | 409))
        .map(|(s, n)| (*s, *n))
        .collect();
    out.push(check(
        "checkout answers",
        "every checkout answered 202 or 409 in the end (retried with the same key)",
        if odd_answers.is_empty() {
            format!("{:?}", c.checkout_answers)
        } else {
            format!("other final answers {odd_answers:?} (0 = none before the deadline)")
        },
        odd_answers.is_empty(),
    ));
    let open: i64 = ["queued", "running"]
        .iter()
        .filter_map(|s| d.jobs_by_status.get(*s))
        .sum();
    let unfinished: usize = c
        .jobs
        .iter()
        .filter(|(s, _)| s.starts_with("unfinished"))
        .map(|(_, n)| n)
        .sum();
    out.push(check(
        "jobs final",
        "every accepted checkout job final; no jobs row queued or running",
        format!(
            "jobs {:?} ({} needed more than one attempt), failed checkouts by code {:?}; clients saw {unfinished} unfinished; open: {:?}",
            d.jobs_by_status,
            d.jobs_retried,
            d.checkout_jobs_failed_by_code,
            d.open_jobs.iter().take(3).collect::<Vec<_>>()
        ),
        open == 0 && unfinished == 0,
    ));
    out.push(check(
        "orders match jobs",
        "succeeded checkout jobs == their orders; a failed job leaves no open order; no order without a job",
        format!(
            "{} succeeded jobs, {} orders of them ({} without one); orders {:?}; failed jobs with an open order {}; orders without a job {}",
            d.succeeded_checkout_jobs,
            d.orders_of_succeeded_jobs,
            d.succeeded_jobs_without_order,
            d.orders_by_status,
            d.failed_jobs_with_open_order,
            d.orders_without_job
        ),
        d.succeeded_checkout_jobs == d.orders_of_succeeded_jobs
            && d.succeeded_jobs_without_order == 0
            && d.failed_jobs_with_open_order == 0
            && d.orders_without_job == 0,
    ));
    out.push(check(
        "checkout idempotency",
        "one job and at most one order per buyer + Idempotency-Key; a replayed key names the same job",
        format!(
            "keys with two jobs {}, with two orders {}; {} replays, {} named another job {:?}",
            d.keys_with_two_jobs,
            d.keys_with_two_orders,
            c.replays,
            c.replays_other_job.len(),
            c.replays_other_job.iter().take(3).collect::<Vec<_>>()
        ),
        d.keys_with_two_jobs == 0 && d.keys_with_two_orders == 0 && c.replays_other_job.is_empty(),
    ));
    out.push(check(
        "payments settled",
        "every payment acknowledged, its order paid by exactly one event; one sale + one platform_fee entry per line; no entries on unpaid orders",
        format!(
            "{}/{} acknowledged ({:?}), not paid {} {:?}; {} paid orders, not settled by exactly one event {}; {} paid lines: sale wrong {}, fee wrong {}, other entries {}; entries on unpaid orders {}; client anomalies {:?}",
            c.payments_acked,
            c.payments,
            c.ack_details,
            d.acked_not_paid.len(),
            d.acked_not_paid.iter().take(3).collect::<Vec<_>>(),
            d.paid_orders,
            d.paid_orders_not_settled_by_exactly_one_event,
            d.paid_lines,
            d.paid_lines_sale_wrong,
            d.paid_lines_fee_wrong,
            d.ledger_entries_other,
            d.ledger_entries_of_unpaid_orders,
            c.anomalies.iter().take(3).collect::<Vec<_>>()
        ),
        c.payments_acked == c.payments
            && d.acked_not_paid.is_empty()
            && d.paid_orders_not_settled_by_exactly_one_event == 0
            && d.paid_lines_sale_wrong == 0
            && d.paid_lines_fee_wrong == 0
            && d.ledger_entries_other == 0
            && d.ledger_entries_of_unpaid_orders == 0
            && c.anomalies.is_empty()
            && c.ack_details.keys().all(|k| k == "stored" || k == "duplicate"),
    ));
    let wrong: Vec<String> = d
        .listings
        .iter()
        .filter(|l| {
            let (q, r) = (i64::from(l.quantity), i64::from(l.reserved));
            q != l.initial - l.paid_units
                || r != l.pending_units
                || r < 0
                || r > q
                || l.paid_units + l.pending_units > l.initial
        })
        .map(|l| {
            format!(
                "{}: started {}, quantity {}, reserved {}, pending units {}, paid units {}",
                l.id, l.initial, l.quantity, l.reserved, l.pending_units, l.paid_units
            )
        })
        .collect();
    let scarce: Vec<String> = d
        .listings
        .iter()
        .filter(|l| l.initial < 1000)
        .map(|l| format!("{}/{} sold", l.paid_units, l.initial))
        .collect();
    out.push(check(
        "stock exact",
        "per listing: quantity == start − paid units; reserved == units of pending orders; 0 <= reserved <= quantity; no oversell",
        format!(
            "{} listings, {} wrong {:?}; scarce listings {scarce:?}",
            d.listings.len(),
            wrong.len(),
            wrong.iter().take(3).collect::<Vec<_>>()
        ),
        wrong.is_empty(),
    ));
    out.push(check(
        "one PaymentIntent per order",
        "intents created at Stripe == distinct create keys == orders with an intent; each order keeps its one intent; a repeated key gets the same intent",
        format!(
            "{} intents, {} create keys ({} replayed creates), {} orders with an intent; keys with two intents {}, orders with two intents {} {:?}, orders with a wrong intent {} {:?}, intents not kept by their order {}",
            s.intents_created,
            s.create_keys,
            s.create_replays,
            d.orders_with_intent,
            s.keys_with_two_intents,
            s.orders_with_two_intents.len(),
            s.orders_with_two_intents.iter().take(2).collect::<Vec<_>>(),
            s.orders_intent_wrong.len(),
            s.orders_intent_wrong.iter().take(2).collect::<Vec<_>>(),
            s.intents_not_kept
        ),
        s.intents_created == s.create_keys
            && i64::try_from(s.create_keys).unwrap_or(i64::MAX) == d.orders_with_intent
            && s.keys_with_two_intents == 0
            && s.orders_with_two_intents.is_empty()
            && s.orders_intent_wrong.is_empty()
            && s.intents_not_kept == 0,
    ));
    out.push(check(
        "Stripe idempotency keys",
        "every POST to Stripe carries an Idempotency-Key, never reused with other parameters",
        format!(
            "calls {:?}; POSTs without a key {} {:?}; idempotency errors {}",
            s.calls,
            s.posts_without_key.len(),
            s.posts_without_key.iter().take(3).collect::<Vec<_>>(),
            s.idempotency_errors
        ),
        s.posts_without_key.is_empty() && s.idempotency_errors == 0,
    ));
    out.push(check(
        "webhook events processed",
        "no unprocessed webhook_events",
        format!(
            "{} events, {} unprocessed {:?}; processed with a note {:?}",
            d.webhook_events,
            d.unprocessed_webhook_events,
            d.open_events.iter().take(3).collect::<Vec<_>>(),
            d.webhook_events_with_note
        ),
        d.unprocessed_webhook_events == 0,
    ));
    let shown = |t: Option<f64>| t.map_or_else(|| "never".to_owned(), |t| format!("t={t:.2}s"));
    let slowest = flip.probes.iter().map(|p| p.ms).fold(0.0, f64::max);
    let answers: BTreeMap<u16, usize> = flip.probes.iter().fold(BTreeMap::new(), |mut m, p| {
        count(&mut m, p.status);
        m
    });
    out.push(check(
        "readiness during the PostgreSQL restart",
        "/health/ready leaves 200 (a 503, or no answer within a probe's 1 s) during the restart and returns to 200",
        format!(
            "restart at {}; {} probes until 5 s after it, answers {answers:?} (0 = none within 1 s), slowest {slowest:.0} ms; not ready at {} ({}), ready again at {}",
            shown(flip.restart_t),
            flip.probes.len(),
            shown(flip.not_ready_t),
            flip.not_ready_status
                .map_or_else(|| "-".to_owned(), |s| if s == 0 { "no answer".into() } else { s.to_string() }),
            shown(flip.ready_again_t)
        ),
        flip.not_ready_t.is_some() && flip.ready_again_t.is_some(),
    ));
    for r in recovery {
        let max = |m: Option<f64>| m.map_or_else(|| "-".to_owned(), |m| format!("{m:.1} s"));
        out.push(check(
            format!("recovery after {} (jobs)", r.fault),
            &format!("every job not final at the fault, or created during it, final within {RECOVERY_BOUND_S:.0} s"),
            format!(
                "t={:.1}s: {} jobs hit ({} in flight at the fault), max {} to final, {} never final{}",
                r.at_t,
                r.jobs_hit,
                r.jobs_in_flight_at_fault,
                max(r.jobs_max_s),
                r.jobs_not_final,
                r.slowest_job
                    .as_ref()
                    .map(|s| format!("; slowest {}", s.describe()))
                    .unwrap_or_default()
            ),
            r.jobs_not_final == 0 && r.jobs_max_s.is_none_or(|m| m <= RECOVERY_BOUND_S),
        ));
        out.push(check(
            format!("recovery after {} (payment events)", r.fault),
            &format!("every webhook event not processed at the fault, or received during it, processed within {RECOVERY_BOUND_S:.0} s"),
            format!(
                "{} events hit, max {} to processed, {} never processed{}",
                r.events_hit,
                max(r.events_max_s),
                r.events_not_processed,
                r.slowest_event
                    .as_ref()
                    .map(|s| format!("; slowest {}", s.describe()))
                    .unwrap_or_default()
            ),
            r.events_not_processed == 0 && r.events_max_s.is_none_or(|m| m <= RECOVERY_BOUND_S),
        ));
    }
    let mut server_errors: BTreeMap<u16, usize> = BTreeMap::new();
    for w in windows {
        for (s, n) in w.errors.iter().filter(|(s, _)| **s >= 500) {
            *server_errors.entry(*s).or_default() += n;
        }
    }
    out.push(check(
        "server errors are 503",
        "a 5xx is only ever 503 unavailable (README: never a 500)",
        format!("5xx answers {server_errors:?}"),
        server_errors.keys().all(|s| *s == 503),
    ));
    let injected: Vec<&str> = faults
        .iter()
        .filter(|f| f.detail.starts_with("FAILED"))
        .map(|f| f.name)
        .collect();
    out.push(check(
        "faults and processes",
        "every fault injected; no process exited on its own",
        format!(
            "{} faults, not injected {injected:?}; exits on their own {exits:?}",
            faults.len()
        ),
        injected.is_empty() && exits.is_empty() && faults.len() == super::faults::ALL.len(),
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chaos::faults::Kind;

    fn fault(start_t: f64, end_t: f64) -> Fault {
        let t0 = DateTime::<Utc>::from_timestamp(1_000_000, 0).unwrap();
        let at = |t: f64| t0 + chrono::Duration::milliseconds((t * 1000.0) as i64);
        Fault {
            kind: Kind::RestartPostgres,
            name: "PostgreSQL restart",
            start_t,
            end_t,
            start: at(start_t),
            end: at(end_t),
            detail: String::new(),
        }
    }

    #[test]
    fn a_fault_hits_what_was_in_flight_or_created_during_it() {
        let f = fault(10.0, 12.0);
        let t0 = DateTime::<Utc>::from_timestamp(1_000_000, 0).unwrap();
        let at = |t: f64| t0 + chrono::Duration::milliseconds((t * 1000.0) as i64);
        let life = |id: &str, created: f64, finished: Option<f64>| Life {
            id: id.into(),
            attempts: 1,
            created: at(created),
            finished: finished.map(at),
        };
        let lives = vec![
            life("before", 1.0, Some(2.0)),
            life("in flight", 9.0, Some(40.0)),
            life("during", 11.0, Some(13.0)),
            life("after", 13.0, Some(99.0)),
            life("never final", 9.5, None),
        ];
        let (n, in_flight, max, open, slowest) = hit(&lives, &f);
        assert_eq!((n, in_flight, open), (3, 2, 1));
        let slowest = slowest.unwrap();
        assert_eq!(
            (slowest.id.as_str(), slowest.created_s),
            ("in flight", -1.0)
        );
        assert_eq!(max, Some(30.0));
    }

    fn probes(p: &[(f64, u16)]) -> Vec<Probe> {
        p.iter()
            .map(|(t, status)| Probe {
                t: *t,
                status: *status,
                ms: 5.0,
            })
            .collect()
    }

    #[test]
    fn readiness_must_drop_during_the_restart_and_come_back() {
        let f = fault(10.0, 11.0);
        let samples = probes(&[
            (9.5, 200),
            (10.0, 200),
            (10.2, 503),
            (10.4, 503),
            (10.6, 200),
        ]);
        let flip = readiness_flip(&samples, Some(&f), Some(20.0));
        assert_eq!(flip.not_ready_t, Some(10.2));
        assert_eq!(flip.ready_again_t, Some(10.6));
        assert_eq!(flip.probes.len(), 4);
        // The next fault's outage is not the restart's.
        let flat = probes(&[(10.0, 200), (10.2, 200), (20.0, 0), (21.0, 200)]);
        assert!(
            readiness_flip(&flat, Some(&f), Some(20.0))
                .not_ready_t
                .is_none()
        );
    }
}
