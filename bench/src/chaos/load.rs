//! The drill's load: clients that keep buying while the faults happen, the way a careful client
//! would — retrying a checkout with the same `Idempotency-Key` after a 5xx or a lost answer,
//! following the job until it is final, and (playing Stripe) redelivering the payment webhook
//! until it is acknowledged.

use std::{
    collections::BTreeMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::Context;
use rand::{Rng, seq::SliceRandom};
use reqwest::{RequestBuilder, StatusCode};
use serde::Serialize;
use serde_json::{Value, json};
use uuid::Uuid;

use super::{stripe_fake::FakeStripe, timeline::Timeline};
use crate::{setup::Buyer, stripe};

/// A request that got no usable answer: a 5xx, or no answer at all (`status` 0).
#[derive(Debug, Clone, Serialize)]
pub(crate) struct RequestError {
    pub t: f64,
    pub route: &'static str,
    pub status: u16,
}

/// Every request the clients sent, for the per-fault-window counts.
#[derive(Default)]
pub(crate) struct Requests {
    /// Requests sent per second since t = 0.
    per_second: Mutex<Vec<u64>>,
    errors: Mutex<Vec<RequestError>>,
}

impl Requests {
    fn record(&self, t: f64, route: &'static str, status: Option<u16>) {
        let s = t.max(0.0) as usize;
        {
            let mut per = self.per_second.lock().expect("requests lock");
            if per.len() <= s {
                per.resize(s + 1, 0);
            }
            per[s] += 1;
        }
        match status {
            Some(s) if s < 500 => {}
            other => self
                .errors
                .lock()
                .expect("requests lock")
                .push(RequestError {
                    t,
                    route,
                    status: other.unwrap_or(0),
                }),
        }
    }

    /// Requests sent in `[from, to)` seconds (whole seconds).
    pub(crate) fn sent_between(&self, from: f64, to: f64) -> u64 {
        let per = self.per_second.lock().expect("requests lock");
        let (a, b) = (from.max(0.0) as usize, to.max(0.0).ceil() as usize);
        per.iter().skip(a).take(b.saturating_sub(a)).sum()
    }

    pub(crate) fn errors(&self) -> Vec<RequestError> {
        self.errors.lock().expect("requests lock").clone()
    }
}

/// A webhook delivery until Stripe would stop.
#[derive(Debug, Clone, Serialize, Default)]
pub(crate) struct Payment {
    pub event_id: String,
    pub intent_id: String,
    pub deliveries: u32,
    /// Acknowledged with a 2xx, and the `status` of its body (`stored`, `duplicate`, ...).
    pub acked: bool,
    pub ack_detail: Option<String>,
    pub acked_t: Option<f64>,
    /// Non-2xx answers by status (`0`: no answer).
    pub refused: BTreeMap<u16, u32>,
}

/// One checkout of one client, from the cart to the acknowledged payment.
#[derive(Debug, Clone, Serialize, Default)]
pub(crate) struct Flow {
    pub buyer: Uuid,
    pub key: String,
    pub sent_t: f64,
    /// Final answer to `POST /checkout` (after retries): 202, 409, ...; 0 = given up.
    pub checkout_status: u16,
    /// Attempts of the checkout request (1 = no retry).
    pub checkout_attempts: u32,
    pub refusal: Option<String>,
    pub job_id: Option<Uuid>,
    /// A replay of the accepted checkout with the same key: the job id it answered.
    pub replay: Option<Result<Uuid, String>>,
    /// `succeeded`, `failed:<code>`, or `unfinished:<last status>` when the deadline passed.
    pub job_status: Option<String>,
    pub job_final_t: Option<f64>,
    pub order_id: Option<Uuid>,
    pub intent_id: Option<String>,
    /// Something the client saw that must not happen (an intent the fake never created, a
    /// wrong order reference).
    pub anomaly: Option<String>,
    pub payment: Option<Payment>,
}

/// What the clients share.
pub(crate) struct Ctx {
    pub http: reqwest::Client,
    pub base: String,
    pub timeline: Timeline,
    pub requests: Arc<Requests>,
    pub fake: Arc<FakeStripe>,
    pub webhook_secret: String,
    /// Listings that never run out, and the few that do.
    pub plentiful: Vec<Uuid>,
    pub scarce: Vec<Uuid>,
    /// No new checkout after this; nothing at all after `deadline`.
    pub load_end: Instant,
    pub deadline: Instant,
    /// Turns that ended before the checkout because the cart could not be filled.
    pub empty_carts: AtomicU64,
}

fn backoff(attempt: u32, first: Duration, cap: Duration) -> Duration {
    let d = first.saturating_mul(1 << attempt.min(10)).min(cap);
    d.mul_f64(rand::thread_rng().gen_range(0.75..1.25))
}

impl Ctx {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// One request; `None` when no answer came (connection refused or reset, timeout).
    async fn once(&self, route: &'static str, req: RequestBuilder) -> Option<(u16, String)> {
        let t = self.timeline.t();
        let answer = match req.send().await {
            Ok(resp) => {
                let status = resp.status().as_u16();
                match resp.text().await {
                    Ok(body) => Some((status, body)),
                    Err(_) => None,
                }
            }
            Err(_) => None,
        };
        self.requests.record(t, route, answer.as_ref().map(|a| a.0));
        answer
    }

    /// Sends `build()` until it gets an answer below 500, backing off after a 5xx or no
    /// answer; `None` at the deadline. Returns the answer and the attempts it took.
    async fn retrying(
        &self,
        route: &'static str,
        build: impl Fn() -> RequestBuilder,
    ) -> Option<((u16, String), u32)> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.once(route, build()).await {
                Some(a) if a.0 < 500 => return Some((a, attempt)),
                _ => {}
            }
            let pause = backoff(
                attempt - 1,
                Duration::from_millis(100),
                Duration::from_secs(2),
            );
            if Instant::now() + pause >= self.deadline {
                return None;
            }
            tokio::time::sleep(pause).await;
        }
    }

    /// A cart of 1–2 lines: mostly listings that never run out, sometimes a scarce one.
    fn pick_lines(&self) -> Vec<(Uuid, i64)> {
        let mut rng = rand::thread_rng();
        let mut lines = Vec::new();
        if !self.scarce.is_empty() && rng.gen_bool(0.12) {
            let l = *self.scarce.choose(&mut rng).expect("a scarce listing");
            lines.push((l, rng.gen_range(1..=2)));
        }
        let n = if lines.is_empty() || rng.gen_bool(0.3) {
            if rng.gen_bool(0.3) { 2 } else { 1 }
        } else {
            0
        };
        for l in self.plentiful.choose_multiple(&mut rng, n) {
            lines.push((*l, rng.gen_range(1..=3)));
        }
        lines
    }

    async fn fill_cart(&self, token: &str) -> usize {
        let cleared = self
            .retrying("clear_cart", || {
                self.http
                    .delete(self.url("/api/v1/cart"))
                    .bearer_auth(token)
            })
            .await;
        if !matches!(cleared, Some(((204, _), _))) {
            return 0;
        }
        let mut lines = 0;
        for (listing, quantity) in self.pick_lines() {
            let put = self
                .retrying("set_cart_item", || {
                    self.http
                        .put(self.url(&format!("/api/v1/cart/items/{listing}")))
                        .bearer_auth(token)
                        .json(&json!({ "quantity": quantity }))
                })
                .await;
            // A scarce listing may have run out: the line is refused and left out.
            if matches!(put, Some(((200, _), _))) {
                lines += 1;
            }
        }
        lines
    }

    /// Follows the job until it is final (or the deadline): (status, result).
    async fn follow(&self, token: &str, job: Uuid) -> (String, Option<Value>) {
        let mut last = "unknown".to_owned();
        loop {
            let answer = self
                .retrying("get_job", || {
                    self.http
                        .get(self.url(&format!("/api/v1/jobs/{job}?wait=5")))
                        .bearer_auth(token)
                })
                .await;
            let Some(((status, body), _)) = answer else {
                return (format!("unfinished:{last}"), None);
            };
            if status != 200 {
                return (format!("unfinished:get_job answered {status}"), None);
            }
            let v: Value = serde_json::from_str(&body).unwrap_or_default();
            match v["status"].as_str() {
                Some("succeeded") => return ("succeeded".into(), Some(v["result"].clone())),
                Some("failed") => {
                    let code = v["error"]["code"].as_str().unwrap_or("?");
                    return (format!("failed:{code}"), None);
                }
                Some(s) => last = s.to_owned(),
                None => last = "unreadable".into(),
            }
            if Instant::now() >= self.deadline {
                return (format!("unfinished:{last}"), None);
            }
            // A long-poll that ends early (its wake-up lost) is not retried in a tight loop.
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Stripe's side of a payment: the intent succeeds, and `payment_intent.succeeded` is
    /// delivered (signed anew each time, like Stripe) until a 2xx, with backoff in between.
    async fn pay(&self, flow: &mut Flow, order_id: Uuid, intent_id: String) {
        let Some(object) = self.fake.pay(&intent_id) else {
            flow.anomaly = Some(format!("intent {intent_id} was never created at Stripe"));
            return;
        };
        if object["metadata"]["order_id"].as_str() != Some(order_id.to_string().as_str()) {
            flow.anomaly = Some(format!(
                "intent {intent_id} is for order {}, not {order_id}",
                object["metadata"]["order_id"]
            ));
        }
        let mut payment = Payment {
            event_id: format!("evt_{}", Uuid::new_v4().simple()),
            intent_id,
            ..Payment::default()
        };
        let body = stripe::event_body(&payment.event_id, "payment_intent.succeeded", object);
        loop {
            payment.deliveries += 1;
            let signature =
                stripe::signature(&self.webhook_secret, chrono::Utc::now().timestamp(), &body);
            let req = self
                .http
                .post(self.url("/api/v1/webhooks/stripe"))
                .header("Content-Type", "application/json; charset=utf-8")
                .header("Stripe-Signature", signature)
                .body(body.clone());
            match self.once("stripe_webhook", req).await {
                Some((status, answer)) if (200..300).contains(&status) => {
                    payment.acked = true;
                    payment.acked_t = Some(self.timeline.t());
                    payment.ack_detail = serde_json::from_str::<Value>(&answer)
                        .ok()
                        .and_then(|v| Some(v["status"].as_str()?.to_owned()));
                    break;
                }
                other => *payment.refused.entry(other.map_or(0, |a| a.0)).or_default() += 1,
            }
            let pause = backoff(
                payment.deliveries - 1,
                Duration::from_millis(500),
                Duration::from_secs(5),
            );
            if Instant::now() + pause >= self.deadline {
                break;
            }
            tokio::time::sleep(pause).await;
        }
        flow.payment = Some(payment);
    }

    /// One checkout of `buyer`, from the cart to the acknowledged payment.
    async fn checkout(&self, buyer: &Buyer) -> Option<Flow> {
        if self.fill_cart(&buyer.token).await == 0 {
            return None;
        }
        let key = Uuid::new_v4().to_string();
        let mut flow = Flow {
            buyer: buyer.id,
            key: key.clone(),
            sent_t: self.timeline.t(),
            ..Flow::default()
        };
        let send = || {
            self.http
                .post(self.url("/api/v1/checkout"))
                .bearer_auth(&buyer.token)
                .header("Idempotency-Key", &key)
                .json(&json!({ "address_id": buyer.address_id }))
        };
        let Some(((status, body), attempts)) = self.retrying("create_checkout", send).await else {
            return Some(flow);
        };
        flow.checkout_status = status;
        flow.checkout_attempts = attempts;
        let v: Value = serde_json::from_str(&body).unwrap_or_default();
        if status != 202 {
            flow.refusal = Some(
                v["error"]["code"]
                    .as_str()
                    .map_or_else(|| body.chars().take(200).collect(), str::to_owned),
            );
            return Some(flow);
        }
        let Some(job) = v["job_id"].as_str().and_then(|s| s.parse::<Uuid>().ok()) else {
            flow.anomaly = Some(format!("202 without a job id: {body}"));
            return Some(flow);
        };
        flow.job_id = Some(job);
        // A double submit now and then: the same key must name the same job.
        if rand::thread_rng().gen_bool(0.25) {
            flow.replay = Some(match self.retrying("create_checkout", send).await {
                Some(((202, body), _)) => serde_json::from_str::<Value>(&body)
                    .ok()
                    .and_then(|v| v["job_id"].as_str()?.parse().ok())
                    .ok_or_else(|| format!("202 without a job id: {body}")),
                Some(((status, body), _)) => Err(format!("{status}: {body}")),
                None => Err("no answer before the deadline".into()),
            });
        }
        let (status, result) = self.follow(&buyer.token, job).await;
        flow.job_final_t = Some(self.timeline.t());
        flow.job_status = Some(status.clone());
        if status != "succeeded" {
            return Some(flow);
        }
        let result = result.unwrap_or_default();
        flow.order_id = result["order_id"].as_str().and_then(|s| s.parse().ok());
        flow.intent_id = result["client_secret"]
            .as_str()
            .and_then(stripe::intent_of_client_secret);
        match (flow.order_id, flow.intent_id.clone()) {
            (Some(order), Some(intent)) => self.pay(&mut flow, order, intent).await,
            _ => flow.anomaly = Some(format!("succeeded job without order or intent: {result}")),
        }
        Some(flow)
    }
}

/// One client: its buyers take turns until the load ends.
pub(crate) async fn client(ctx: Arc<Ctx>, buyers: Vec<Buyer>) -> Vec<Flow> {
    let mut flows = Vec::new();
    let mut turn = 0;
    while Instant::now() < ctx.load_end && !buyers.is_empty() {
        let buyer = &buyers[turn % buyers.len()];
        turn += 1;
        match ctx.checkout(buyer).await {
            Some(flow) => flows.push(flow),
            None => {
                ctx.empty_carts.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
    flows
}

/// One readiness probe: when it was sent, its status (`0`: no answer within the probe's 1 s,
/// as a Kubernetes probe with its default `timeoutSeconds` would see it) and how long it took.
#[derive(Debug, Clone, Copy, Serialize)]
pub(crate) struct Probe {
    pub t: f64,
    pub status: u16,
    pub ms: f64,
}

/// `GET /health/ready` every 200 ms until `stop`, with every change of answer on the timeline.
pub(crate) async fn watch_readiness(
    http: reqwest::Client,
    url: String,
    timeline: Timeline,
    stop: Arc<AtomicBool>,
) -> Vec<Probe> {
    let mut probes = Vec::new();
    let mut last: Option<u16> = None;
    while !stop.load(Ordering::Relaxed) {
        let (t, sent) = (timeline.t(), Instant::now());
        let status = match http.get(&url).timeout(Duration::from_secs(1)).send().await {
            Ok(r) => r.status().as_u16(),
            Err(_) => 0,
        };
        let ms = sent.elapsed().as_secs_f64() * 1000.0;
        if last != Some(status) {
            let name = |s: u16| {
                if s == 0 {
                    "no answer within 1 s".to_owned()
                } else {
                    StatusCode::from_u16(s).map_or_else(|_| s.to_string(), |c| c.to_string())
                }
            };
            let from = last.map_or_else(|| "start".to_owned(), name);
            timeline.event(format!(
                "api /health/ready: {from} -> {} (probe sent at t={t:.2}s)",
                name(status)
            ));
            last = Some(status);
        }
        probes.push(Probe { t, status, ms });
        tokio::time::sleep(Duration::from_millis(200).saturating_sub(sent.elapsed())).await;
    }
    probes
}

/// The clients' HTTP client: no proxy, short connect timeout, long enough for `?wait=5`.
pub(crate) fn http_client(pool: usize) -> anyhow::Result<reqwest::Client> {
    reqwest::Client::builder()
        .no_proxy()
        .tcp_nodelay(true)
        .pool_max_idle_per_host(pool)
        .connect_timeout(Duration::from_secs(2))
        .timeout(Duration::from_secs(20))
        .build()
        .context("failed to build the HTTP client")
}
