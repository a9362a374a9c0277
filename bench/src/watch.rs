//! Watching Postgres for many things at once: one task polls the outstanding set every few
//! milliseconds with a single query and answers each waiter through a oneshot channel. Only ids
//! still outstanding are queried, so each poll touches a few dozen index entries at most.
//!
//! Times come from the rows (`jobs.finished_at`, `orders.paid_at`; same machine, same clock),
//! converted to `Instant`s, so the poll interval does not add to the measured latencies.

use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

/// What is watched.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Kind {
    /// Checkout jobs (by job id) until `succeeded` or `failed`, with their order.
    Job,
    /// Orders (by order id) until they leave `pending_payment`.
    Order,
}

/// A final state seen in Postgres.
#[derive(Debug, Clone)]
pub(crate) struct Seen {
    /// When the row says it happened.
    pub at: Instant,
    /// The job's or the order's status.
    pub status: String,
    pub error_code: Option<String>,
    /// Jobs: the order the job created, and its PaymentIntent.
    pub order_id: Option<Uuid>,
    pub intent_id: Option<String>,
}

type Request = (Uuid, oneshot::Sender<Seen>);

/// A handle to a watcher task; the task ends when every handle is dropped and nothing is left.
#[derive(Clone)]
pub(crate) struct Watcher {
    tx: mpsc::UnboundedSender<Request>,
}

/// How often the outstanding set is polled.
const INTERVAL: Duration = Duration::from_millis(10);

impl Watcher {
    pub(crate) fn spawn(pool: PgPool, kind: Kind) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(run(pool, kind, rx));
        Self { tx }
    }

    /// Waits until `id` is final, or `timeout`.
    pub(crate) async fn wait(&self, id: Uuid, timeout: Duration) -> Option<Seen> {
        let (tx, rx) = oneshot::channel();
        self.tx.send((id, tx)).ok()?;
        tokio::time::timeout(timeout, rx).await.ok()?.ok()
    }
}

/// `(id, status, error_code, at, order_id, intent_id)`.
type Row = (
    Uuid,
    String,
    Option<String>,
    Option<DateTime<Utc>>,
    Option<Uuid>,
    Option<String>,
);

async fn poll(pool: &PgPool, kind: Kind, ids: &[Uuid]) -> sqlx::Result<Vec<Row>> {
    let sql = match kind {
        Kind::Job => {
            "SELECT j.id, j.status, j.error_code, j.finished_at, o.id, o.payment_intent_id
             FROM jobs j LEFT JOIN orders o ON o.checkout_job_id = j.id
             WHERE j.id = ANY($1) AND j.status IN ('succeeded', 'failed')"
        }
        Kind::Order => {
            "SELECT id, status, NULL::text, COALESCE(paid_at, closed_at, updated_at), id, payment_intent_id
             FROM orders WHERE id = ANY($1) AND status <> 'pending_payment'"
        }
    };
    sqlx::query_as(sql).bind(ids).fetch_all(pool).await
}

async fn run(pool: PgPool, kind: Kind, mut rx: mpsc::UnboundedReceiver<Request>) {
    let mut waiting: HashMap<Uuid, oneshot::Sender<Seen>> = HashMap::new();
    loop {
        if waiting.is_empty() {
            // Nothing outstanding: sleep until someone asks (or every handle is gone).
            match rx.recv().await {
                Some((id, tx)) => {
                    waiting.insert(id, tx);
                }
                None => return,
            }
        }
        while let Ok((id, tx)) = rx.try_recv() {
            waiting.insert(id, tx);
        }
        waiting.retain(|_, tx| !tx.is_closed());
        let ids: Vec<Uuid> = waiting.keys().copied().collect();
        match poll(&pool, kind, &ids).await {
            Ok(rows) => {
                let (now, now_utc) = (Instant::now(), Utc::now());
                for (id, status, error_code, at, order_id, intent_id) in rows {
                    let at = at
                        .and_then(|at| (now_utc - at).to_std().ok())
                        .and_then(|ago| now.checked_sub(ago))
                        .unwrap_or(now);
                    if let Some(tx) = waiting.remove(&id) {
                        let _ = tx.send(Seen {
                            at,
                            status,
                            error_code,
                            order_id,
                            intent_id,
                        });
                    }
                }
            }
            Err(e) => eprintln!("watcher: poll failed: {e}"),
        }
        tokio::time::sleep(INTERVAL).await;
    }
}
